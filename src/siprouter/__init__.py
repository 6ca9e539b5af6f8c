"""siprouter: a Kamailio-compatible SIP proxy and load balancer in Python."""

__version__ = "0.1.0"
