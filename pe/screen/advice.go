package screen

import "strings"

// advice pairs words of an error with what a technician can do about it.
// The first match wins, so the more specific come first.
var advice = []struct {
	words []string // all must appear (lower case)
	what  string
}{
	{[]string{"system is hibernated"}, "The system on this disk is hibernated; nothing was changed. Start it from its disk (put the disk before the network in the boot order) and shut it down instead of hibernating. To deploy it again, erasing it, boot the PE with minint.redo=1."},
	{[]string{"system deployed before"}, "This machine was deployed before and has started since; nothing was changed. To start it, put its disk before the network in its boot order. To deploy it again, erasing it, boot the PE with minint.redo=1."},
	{[]string{"kernel command line"}, "Correct the boot parameters (ip=, vlan=, nameserver=, minint.*) in the boot menu or the medium's configuration, then boot again."},
	{[]string{"signature"}, "The package or sequence is not signed by the key this PE trusts: sign it with that key (minint package create/sign) or build the PE with the signer's key (--key)."},
	{[]string{"checksum"}, "The image does not match its signed manifest: copy the package again (it is damaged or was changed), then retry."},
	{[]string{"requirement"}, "This machine does not meet the sequence's requirements (memory, disk, devices): use another machine or change the sequence."},
	{[]string{"no disk"}, "No disk matches the sequence's selection: check that the disk is connected and its controller has a driver (see the disks above), or change the selection."},
	{[]string{"ambiguous"}, "Several disks match the selection: make the sequence's disk selection more precise (serial, size, transport)."},
	{[]string{"dhcp"}, "The network did not come up: check the cable and the DHCP server, or give a static address (ip=ADDRESS::GATEWAY:NETMASK::IFACE:none), then retry."},
	{[]string{"no interface"}, "The interface named in ip= or vlan= does not exist: see the network cards above (ifname=NAME:MAC pins a name), and boot again."},
	{[]string{"connection refused"}, "The server refused the connection: check that it runs and the URL's port, then retry."},
	{[]string{"no route"}, "No route to the server: check the address, gateway and VLAN, then retry."},
	{[]string{"timeout"}, "A server did not answer in time: check the network and the server, then retry."},
	{[]string{"404"}, "The server does not have the file: check the URL in the sequence and what the server publishes, then retry."},
	{[]string{"boot medium"}, "The boot medium was not found: check that the ISO or USB stick is attached, then reboot."},
	{[]string{"no space"}, "The target disk is too small for the image: use a larger disk or a smaller image."},
	{[]string{"too many open files"}, "The PE ran out of file descriptors: report this with the log."},
}

// Advice says what to do about a failure whose error reads err. back: the
// PE will return to the installed system, which is intact.
func Advice(err string, back bool) string {
	s := strings.ToLower(err)
	out := "Read the log for details; fix the cause (sequence, package, server or hardware), then choose retry, or open a shell to investigate."
	for _, a := range advice {
		all := true
		for _, w := range a.words {
			if !strings.Contains(s, w) {
				all = false
				break
			}
		}
		if all {
			out = a.what
			break
		}
	}
	if back {
		out += " Nothing outside /minint was changed: the installed system is intact and the machine returns to it."
	}
	return out
}
