"""A real multi-node cluster on one machine: nodes as Docker containers with sshd and dockerd."""
