"""HTTP API v1: thin routers over controller.service.Controller."""
