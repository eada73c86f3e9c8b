"""The site's MQTT broker (Mosquitto): configuration, device credentials and ACL."""
