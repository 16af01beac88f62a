"""From background and frame to worm masks."""
