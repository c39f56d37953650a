"""Where cachemgr learns which instances exist on this storage."""
