#!/bin/sh
# no-service-starts.sh CMD [ARG...] - run CMD (apt-get install, dpkg -i)
# with Debian's policy-rc.d denying service starts, so that installing a
# package that ships a daemon neither starts it nor enables it at boot: the
# tests start their own, on loopback. A policy-rc.d the machine has is
# left as it is; one a killed run left behind carries the marker line and
# is replaced and removed like one of ours.
policy=/usr/sbin/policy-rc.d
mark='# Put here by sluice tests while they install.'
mine=
if [ ! -e "$policy" ] || grep -qxF "$mark" "$policy"; then
	printf '#!/bin/sh\n%s\nexit 101\n' "$mark" >"$policy" && chmod 755 "$policy" && mine=1
fi
"$@"
rc=$?
[ -z "$mine" ] || rm -f "$policy"
exit $rc
