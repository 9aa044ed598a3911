"""`make bench`: start every system under test on loopback and measure them side by side."""
