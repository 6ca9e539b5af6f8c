# siprouter example: the routing of loadbalancer.cfg written in KEMI Python
# (app_python3), loaded by loadbalancer-kemi.cfg. Runs unchanged on Kamailio 5.6.
#
# Requests are checked (loop protection, RFC sanity), in-dialog requests follow
# the Record-Route path, and new calls are spread round robin over set 1.
#
# KEMI has no implicit "exit" on a 0 return code: a route ends by returning from
# its method. Helper methods return -255 to tell the caller to stop (Kamailio's
# convention); sys.exit() would work too.

import KSR as KSR

EXIT = -255


def mod_init():
    """Called once at start-up; returns the object whose methods are the routes."""
    return LoadBalancer()


class LoadBalancer:
    def __init__(self):
        pass

    def child_init(self, rank):
        return 0

    # request_route
    def ksr_request_route(self, msg):
        if self.route_reqinit(msg) == EXIT:
            return 1
        # keep-alive pings addressed to the balancer itself
        if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.pv.is_null("$rU"):
            KSR.sl.sl_send_reply(200, "OK")
            return 1
        if self.route_withindlg(msg) == EXIT:
            return 1
        # initial requests: stay on the path of the dialog, pick a backend
        if KSR.is_INVITE():
            KSR.rr.record_route()
        if KSR.dispatcher.ds_select_dst(1, 4) < 0:
            KSR.xlog.xerr("no backend available for $rm from $si:$sp\n")
            KSR.sl.sl_send_reply(503, "Service Unavailable")
            return 1
        KSR.xlog.xinfo("$rm $ru -> $du (Call-ID $ci)\n")
        KSR.forward()
        return 1

    def route_reqinit(self, msg):
        # loop protection: a request that has used up its hops gets 483
        if KSR.maxfwd.process_maxfwd(10) == -1:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return EXIT
        # RFC 3261 sanity: malformed requests get sanity's own error reply
        if KSR.sanity.sanity_check(17895, 7) < 0:
            KSR.xlog.xwarn("Malformed SIP request from $si:$sp\n")
            return EXIT
        return 1

    def route_withindlg(self, msg):
        # in-dialog requests follow the route set recorded by record_route()
        if KSR.siputils.has_totag() < 0:
            return 1
        if KSR.rr.loose_route() > 0:
            KSR.forward()
            return EXIT
        if KSR.is_ACK():
            return EXIT
        KSR.sl.sl_send_reply(404, "Not here")
        return EXIT

    # reply_route: replies are relayed statelessly after this
    def ksr_reply_route(self, msg):
        return 1
