"""The hall display: latest calls and waiting counts on an HDMI screen, with a chime and a voice."""
