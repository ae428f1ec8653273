"""Split execution: a deep model cut into a head (device) and a tail (cloud), and the planner that picks the cut."""
