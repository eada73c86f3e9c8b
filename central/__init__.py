"""The central coordinator: queue, numbering and data for one site."""
