"""Host side of the microcontroller binaural audio link. Imports nothing from the other packages."""
