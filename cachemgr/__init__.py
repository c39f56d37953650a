"""cachemgr: the image cache manager for OpenStack compute hosts."""
