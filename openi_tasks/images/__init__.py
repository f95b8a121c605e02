"""The platform's Docker images: build in dependency order, push with credentials."""
