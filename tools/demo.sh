#!/bin/sh
# demo.sh - a tour of the bpfkit command (run by `make demo`, from the repo
# root, after `make bpfkit`).  POSIX sh.
#
# It assembles a small filter, shows it in every format, validates it under
# each rule set, runs it on hand-written packets, generates a capture with
# `bpfkit gen` and filters it.  Every step checks what
# it shows: the script exits non-zero if any command fails or a verdict
# differs from the one expected.

BPFKIT=${BPFKIT:-./bpfkit}
if [ ! -x "$BPFKIT" ]; then
	echo "demo: $BPFKIT not found; run 'make bpfkit' first" >&2
	exit 1
fi

# Work in a scratch directory so the commands shown have short file names.
case $BPFKIT in
*/*) BPFKIT=$(cd "$(dirname "$BPFKIT")" && pwd)/$(basename "$BPFKIT") ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/bpfkit-demo.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
cd "$work" || exit 1

failures=0
step=0

# step TITLE EXPLANATION: announce what the next commands show.
step() {
	step=$((step + 1))
	printf '\n== %d. %s\n' "$step" "$1"
	[ -n "$2" ] && printf '%s\n' "$2"
	return 0
}

fail() {
	printf 'demo: FAILED: %s\n' "$*" >&2
	failures=$((failures + 1))
}

# say ARGS...: print "$ bpfkit ARGS", quoting arguments that hold blanks.
say() {
	printf '$ bpfkit'
	for arg in "$@"; do
		case $arg in
		*" "*) printf " '%s'" "$arg" ;;
		*) printf ' %s' "$arg" ;;
		esac
	done
	printf '\n'
}

# show ARGS...: print and run `bpfkit ARGS`; the demo fails if it exits non-zero.
show() {
	say "$@"
	"$BPFKIT" "$@" || fail "'bpfkit $*' exited $?"
}

# show_failing WANT ARGS...: print and run `bpfkit ARGS`, which must exit WANT.
show_failing() {
	want=$1
	shift
	say "$@"
	"$BPFKIT" "$@" 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		printf '   -> exit %d, as expected\n' "$rc"
	else
		fail "'bpfkit $*' exited $rc, expected $want"
	fi
}

# expect_run WANT DESCRIPTION ARGS...: `bpfkit run ARGS`, its last line must be WANT.
expect_run() {
	want=$1 what=$2
	shift 2
	say run "$@"
	out=$("$BPFKIT" run "$@") || { fail "run on $what exited $?"; return; }
	got=$(printf '%s\n' "$out" | tail -n 1)
	printf '%s\n' "$out"
	if [ "$got" = "$want" ]; then
		printf '   -> %s: returned %s, as expected\n' "$what" "$got"
	else
		fail "$what: returned '$got', expected '$want'"
	fi
}

# ---------------------------------------------------------------------------
step "The program" \
"A filter in bpf_asm syntax (the Linux kernel's tools/bpf/bpf_asm): accept IPv4
TCP packets to port 80 on Ethernet, skipping later fragments and reading the
port past a variable-length IP header (X = 4 * IHL)."
cat > "port80.s" <<'EOF'
; IPv4 TCP to port 80 on Ethernet
	ldh [12]                ; ethertype
	jne #0x800, drop        ; not IPv4
	ldb [23]                ; IP protocol
	jne #6, drop            ; not TCP
	ldh [20]                ; flags and fragment offset
	jset #0x1fff, drop      ; a later fragment: no TCP header here
	ldxb 4*([14]&0xf)       ; X = IP header length
	ldh [x + 16]            ; TCP destination port (14 + 2 past the IP header)
	jeq #80, accept, drop
accept:	ret #262144             ; keep up to 256 KiB of the packet
drop:	ret #0                  ; reject
EOF
cat "port80.s"

# ---------------------------------------------------------------------------
step "Assemble it" \
"bpfkit asm writes tcpdump -ddd by default: the count, then code jt jf k."
show asm -o "port80.ddd" "port80.s"
cat "port80.ddd"
n=$(head -n 1 "port80.ddd")
[ "$n" = 11 ] || fail "expected 11 instructions, the ddd says '$n'"

# ---------------------------------------------------------------------------
step "Every format" \
"bpfkit disasm reads any format (it detects which) and writes the one asked for."
before=$failures
for fmt in asm listing c ddd iptables json dot raw; do
	case $fmt in
	asm)      what="bpf_asm source again, with generated labels L<index>" ;;
	listing)  what="what tcpdump -d prints: index, mnemonic, operand, jump targets" ;;
	c)        what="what tcpdump -dd prints: C initializers for struct sock_filter" ;;
	ddd)      what="what tcpdump -ddd prints: decimal, for scripts" ;;
	iptables) what="the xt_bpf match's --bytecode string (quote it in the shell)" ;;
	json)     what="JSON, one object per instruction" ;;
	dot)      what="a Graphviz graph of the control flow (pipe to dot -Tsvg)" ;;
	raw)      what="binary struct sock_filter, host order (shown here through od)" ;;
	esac
	printf '\n-- %s: %s\n' "$fmt" "$what"
	if [ "$fmt" = raw ]; then
		show disasm -f raw -o "port80.raw" "port80.ddd"
		od -A d -t x1 "port80.raw" | head -n 4
		echo "   ... $(wc -c < "port80.raw" | tr -d ' ') bytes: 8 per instruction"
	else
		show disasm -f "$fmt" -o "port80.$fmt" "port80.ddd"
		cat "port80.$fmt"
	fi
	# Every readable format must come back to the same program.
	if [ "$fmt" != dot ]; then
		if ! back=$("$BPFKIT" disasm -f ddd "port80.$fmt" 2>&1); then
			fail "reading $fmt back: $back"
		elif [ "$back" != "$(cat port80.ddd)" ]; then
			fail "$fmt did not read back identical"
		fi
	fi
done
if [ "$failures" -eq "$before" ]; then
	echo
	echo "(each of those, dot aside, was read back and compared: identical programs)"
fi

# ---------------------------------------------------------------------------
step "Validate it under each rule set" \
"socket: the kernel's SO_ATTACH_FILTER rules; pcap: libpcap's bpf_validate;
seccomp: the kernel's seccomp rules, which allow only 32-bit loads from struct
seccomp_data - so this packet filter must be rejected there."
show check -m socket "port80.s"
show check -m pcap "port80.s"
show_failing 1 check -m seccomp port80.s

# ---------------------------------------------------------------------------
step "Run it on hand-written packets" \
"-x gives the bytes in hex; bpfkit prints the return value (bytes to keep, 0 =
reject) on its last line."
eth="000000000002 000000000001 0800"
ip_tcp="4500 0028 0001 0000 4006 0000 0a000001 0a000002"
ip_udp="4500 001c 0001 0000 4011 0000 0a000001 0a000002"
tcp80="3039 0050 00000000 00000000 5002 7210 0000 0000"
udp53="3039 0035 0008 0000"

echo
echo "-- an IPv4 TCP SYN to port 80 (54 bytes):"
expect_run 262144 "TCP to port 80" -p "port80.s" -x "$eth $ip_tcp $tcp80"
echo
echo "-- an IPv4 UDP datagram to port 53 (42 bytes):"
expect_run 0 "UDP to port 53" -p "port80.ddd" -x "$eth $ip_udp $udp53"
echo
echo "-- the TCP frame cut to its first 30 bytes (-L 54: it was 54 on the wire);"
echo "   loading the port reads past the captured bytes, which ends the program with 0:"
expect_run 0 "truncated TCP frame" -p "port80.raw" -x "$eth $ip_tcp" -c 30 -L 54

# ---------------------------------------------------------------------------
step "Trace a run" \
"-t prints each executed instruction with A and X after it and the branch taken."
expect_run 262144 "TCP to port 80, traced" -t -p "port80.iptables" \
	-x "$eth $ip_tcp $tcp80"

# ---------------------------------------------------------------------------
step "Errors point at the source" \
"A typo in assembly is reported with file:line:column and a caret (exit 1)."
sed 's/jset #0x1fff/jsett #0x1fff/' "port80.s" > "typo.s"
show_failing 1 asm typo.s

# ---------------------------------------------------------------------------
step "Generate a capture" \
"bpfkit gen writes made-up but realistic traffic (a mix of protocols, valid
checksums); the same seed gives the same bytes every time."
show gen -n 2000 -S 1 -w "mix.pcap"
show gen -n 2000 -S 1 -w "again.pcap"
if cmp -s "mix.pcap" "again.pcap"; then
	echo "   -> the two runs wrote identical files ($(wc -c < mix.pcap | tr -d ' ') bytes)"
else
	fail "gen with the same seed wrote different files"
fi
if command -v tcpdump >/dev/null 2>&1; then
	echo "-- the first packets, as tcpdump -en shows them:"
	tcpdump -enr "mix.pcap" -c 6 2>/dev/null
fi

# ---------------------------------------------------------------------------
step "Filter it" \
"bpfkit filter runs a program on every packet; -c prints how many matched, -w
keeps them (in a file replaced only when all went well)."
# filter_count WANT ARGS...: `bpfkit filter -c ARGS`; WANT "" accepts any count.
filter_count() {
	want=$1
	shift
	say filter -c "$@"
	got=$("$BPFKIT" filter -c "$@" | tail -n 1) || { fail "filter $* exited $?"; return; }
	printf '%s\n' "$got"
	if [ -n "$want" ] && [ "$got" != "$want" ]; then
		fail "filter $*: counted $got, expected $want"
	fi
	last_count=$got
}
filter_count 2000 -r "mix.pcap"
total=$last_count
filter_count "" -p "port80.s" -r "mix.pcap"
port80=$last_count
show filter -p "port80.s" -r "mix.pcap" -w "port80.pcap"
filter_count "$port80" -r "port80.pcap"
if command -v tcpdump >/dev/null 2>&1; then
	echo "-- filters in tcpdump's language, compiled by tcpdump (-ddd), run by bpfkit;"
	echo "   the counts must equal those of the packets tcpdump itself keeps (-w):"
	for expr in 'tcp dst port 80' 'udp' 'ip6 and not tcp' 'vlan' 'arp or icmp or icmp6'; do
		tcpdump -ddd -r "mix.pcap" "$expr" > "expr.ddd" 2>/dev/null
		tcpdump -r "mix.pcap" -w "tcpdump.pcap" "$expr" 2>/dev/null
		theirs=$("$BPFKIT" filter -r "tcpdump.pcap" | tail -n 1)
		echo "   '$expr': tcpdump keeps $theirs"
		filter_count "$theirs" -p "expr.ddd" -r "mix.pcap"
	done
fi
echo "   -> $port80 of $total packets are IPv4 TCP to port 80"
echo "-- a capture cut short is an error naming the byte offset (exit 1):"
head -c 5000 "mix.pcap" > "cut.pcap"
show_failing 1 filter -c -r cut.pcap

# ---------------------------------------------------------------------------
step "Compile filters in tcpdump's language" \
"bpfkit compile gives libpcap's meaning; -O2 (the default) optimizes without
changing any verdict, short packets included.  The same expression at -O0 and
-O2 must keep the same packets."
show compile 'tcp port 80 or udp port 53'
for expr in 'tcp port 80 or udp port 53' 'host 10.0.0.1 or host 10.0.0.2 or host 10.0.0.3' \
	'port 20 or port 21 or port 22 or port 23 or port 25 or port 53 or port 80 or port 443'; do
	n0=$("$BPFKIT" compile -O0 "$expr" | wc -l | tr -d ' ')
	n2=$("$BPFKIT" compile "$expr" | wc -l | tr -d ' ')
	c0=$("$BPFKIT" filter -c -O0 -r "mix.pcap" "$expr" | tail -n 1)
	c2=$("$BPFKIT" filter -c -r "mix.pcap" "$expr" | tail -n 1)
	echo "   '$expr': $n0 instructions at -O0, $n2 at -O2; keeps $c0 / $c2 packets"
	[ "$c0" = "$c2" ] || fail "'$expr' keeps $c0 packets at -O0 and $c2 at -O2"
	[ "$n2" -le "$n0" ] || fail "'$expr' is longer optimized"
done
echo "-- a typo is an error that points at the column (exit 1):"
show_failing 1 compile 'tcp port 80 and hots 10.0.0.1'

# ---------------------------------------------------------------------------
step "Match many rules at once" \
"bpfkit multi reads rules (ID EXPRESSION per line) and reports, for each rule,
how many packets matched; the counts equal those of each rule run alone."
cat > "rules.txt" <<'RULES'
# id     expression
web      tcp port 80 or tcp port 443
dns      udp port 53
icmp     icmp or icmp6
ten      net 10.0.0.0/8
v6tcp    ip6 and tcp
RULES
show multi -f "rules.txt" -r "mix.pcap" --counts
while read -r id expr; do
	case $id in ''|'#'*) continue ;; esac
	want=$("$BPFKIT" filter -c -r "mix.pcap" "$expr" | tail -n 1)
	got=$("$BPFKIT" multi -f "rules.txt" -r "mix.pcap" --counts 2>/dev/null |
		awk -v id="$id" '$1 == id { print $2 }')
	[ "$got" = "$want" ] || fail "multi counted $got for $id, filter counts $want"
done < "rules.txt"
echo "   -> every rule's count equals bpfkit filter's for that rule alone"

echo
if [ "$failures" -ne 0 ]; then
	echo "demo: $failures step(s) misbehaved" >&2
	exit 1
fi
echo "demo: all $step steps behaved as expected"
