package sequence

import (
	"fmt"
	"github.com/minint/minint/bytesize"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/minint/minint/answer"
	"github.com/minint/minint/diskops"
	"github.com/minint/minint/internal/plural"
	"github.com/minint/minint/sign"
)

// Duration is a step timeout written like "90s", "30m" or "1h30m".
type Duration time.Duration

// UnmarshalYAML takes the node so that a bad duration is reported at its line.
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return nodeErr(n, "bad duration %q: want e.g. 90s, 30m or 1h30m", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// Version is a package version as written: dot-separated numbers,
// compared number by number (sign.CompareVersions), so 2.10 is not the
// YAML number 2.1.
type Version string

// UnmarshalYAML takes the node's text, and reports a bad version at its line.
func (v *Version) UnmarshalYAML(n ast.Node) error {
	s, err := scalarString(n)
	if err != nil {
		return err
	}
	if _, err := sign.CompareVersions(s, s); err != nil {
		return nodeErr(n, "%v", err)
	}
	*v = Version(s)
	return nil
}

// Requirements checks the machine before anything destructive happens and
// fails with a report listing every unmet requirement.
//
//	steps:
//	  - type: requirements
//	    min-memory: 512MiB
//	    min-cpus: 1
//	    min-disk: 8GB          # some candidate disk at least this large
//	    firmware: [uefi]       # allowed firmware types
//	    devices: [net, /dev/vda, "pci:8086:100e"]
type Requirements struct {
	StepBase  `yaml:",inline"`
	MinMemory bytesize.Size `yaml:"min-memory"`
	MinCPUs   int           `yaml:"min-cpus"`
	MinDisk   bytesize.Size `yaml:"min-disk"`
	Firmware  []string      `yaml:"firmware"`
	Devices   []string      `yaml:"devices"`
}

func (s *Requirements) check(m *ast.MappingNode) error {
	if s.MinMemory == 0 && s.MinCPUs == 0 && s.MinDisk == 0 && len(s.Firmware) == 0 && len(s.Devices) == 0 {
		return nodeErr(m, "requirements step requires nothing (set min-memory, min-cpus, min-disk, firmware or devices)")
	}
	if s.MinCPUs < 0 {
		return nodeErr(field(m, "min-cpus"), "min-cpus must not be negative")
	}
	for _, f := range s.Firmware {
		if f != "bios" && f != "uefi" {
			return nodeErr(field(m, "firmware"), "firmware %q: want bios or uefi", f)
		}
	}
	for _, d := range s.Devices {
		switch {
		case d == "net" || d == "disk":
		case strings.HasPrefix(d, "/dev/"):
		case strings.HasPrefix(d, "pci:") && len(strings.Split(d, ":")) == 3:
		default:
			return nodeErr(field(m, "devices"), "device %q: want net, disk, /dev/NAME or pci:VENDOR:DEVICE", d)
		}
	}
	return nil
}

func (s *Requirements) Describe() string {
	var p []string
	if s.MinMemory > 0 {
		p = append(p, "memory >= "+s.MinMemory.String())
	}
	if s.MinCPUs > 0 {
		p = append(p, fmt.Sprintf("cpus >= %d", s.MinCPUs))
	}
	if s.MinDisk > 0 {
		p = append(p, "a disk >= "+s.MinDisk.String())
	}
	if len(s.Firmware) > 0 {
		p = append(p, "firmware "+strings.Join(s.Firmware, "|"))
	}
	if len(s.Devices) > 0 {
		p = append(p, "devices "+strings.Join(s.Devices, ", "))
	}
	return "check " + strings.Join(p, ", ")
}

// SelectDisk chooses the target disk with a diskops rule; the boot medium,
// mounted and in-use disks are never candidates. Rule keys: name, transport,
// min-size, max-size, removable, rotational, serial, wwn, model (a glob),
// by-path, and one of largest, first-largest, smallest. A transport is one
// of diskops.Transports (nvme, sata, sas, scsi, virtio, usb, mmc, xen,
// loop), as the PE's inventory reports it; a virtio-scsi disk is scsi,
// virtio is virtio-blk.
//
//	steps:
//	  - type: select-disk
//	    disk: {transport: virtio, min-size: 1G}
type SelectDisk struct {
	StepBase `yaml:",inline"`
	Disk     diskops.Rule `yaml:"disk"`
}

func (s *SelectDisk) check(m *ast.MappingNode) error {
	if !has(m, "disk") {
		return nodeErr(m, "select-disk needs disk: a rule such as {transport: virtio} or {first-largest: true}")
	}
	if err := s.Disk.Validate(); err != nil {
		return nodeErr(field(m, "disk"), "%v", err)
	}
	return nil
}

func (s *SelectDisk) Describe() string { return "select the target disk: " + s.Disk.String() }

// Partition writes a new partition table to the selected disk. Keys are
// those of a diskops layout.
//
//	steps:
//	  - type: partition
//	    table: gpt
//	    partitions:
//	      - {name: esp, size: 256M, type: esp, fs: vfat, label: ESP}
//	      - {name: root, size: rest, type: linux, fs: ext4, label: root}
//
// The partition named "root" (or else the first ext4 one) holds the
// deployed system and the staging folder; one of type esp is the EFI
// system partition.
type Partition struct {
	StepBase       `yaml:",inline"`
	diskops.Layout `yaml:",inline"`
}

func (s *Partition) check(m *ast.MappingNode) error {
	if !has(m, "partitions") {
		return nodeErr(m, "partition needs partitions:")
	}
	if err := s.Layout.Validate(); err != nil {
		return nodeErr(field(m, "partitions"), "%v", err)
	}
	if RootPartition(&s.Layout) < 0 {
		return nodeErr(field(m, "partitions"), "no partition for the system: name one root, or give one fs: ext4")
	}
	return nil
}

// RootPartition is the index of the partition that holds the system.
func RootPartition(l *diskops.Layout) int {
	for i, p := range l.Partitions {
		if p.Name == "root" {
			return i
		}
	}
	for i, p := range l.Partitions {
		if p.FS == "ext4" {
			return i
		}
	}
	return -1
}

func (s *Partition) Describe() string {
	var p []string
	for _, x := range s.Partitions {
		p = append(p, fmt.Sprintf("%s %s %s", x.Name, x.Size, x.FS))
	}
	return fmt.Sprintf("partition (%s): %s", s.Table, strings.Join(p, "; "))
}

// Format creates the file systems the layout names.
//
//	steps:
//	  - type: format
//	    only: [root]      # optional: partition names; default all with fs
type Format struct {
	StepBase `yaml:",inline"`
	Only     []string `yaml:"only"`
}

func (s *Format) check(*ast.MappingNode) error { return nil }

func (s *Format) Describe() string {
	if len(s.Only) > 0 {
		return "format " + strings.Join(s.Only, ", ")
	}
	return "format every partition that has a file system"
}

// Mount mounts the root partition at target (default /mnt/target) and the
// ESP at target/boot/efi, and creates the staging folder target/minint,
// where the journal lives from then on.
//
// With existing: true (an in-place refresh, see package pe) there is no
// partition step: it mounts the file system `minint stage` prepared,
// found by minint.staged=UUID=… on the PE's command line, with its
// /minint and journal, and finds the ESP on the same disk. It never
// partitions or formats.
//
//	steps:
//	  - type: mount
//	    existing: true
type Mount struct {
	StepBase `yaml:",inline"`
	Target   string `yaml:"target"`
	Existing bool   `yaml:"existing"`
}

func (s *Mount) check(m *ast.MappingNode) error {
	if s.Target == "" {
		s.Target = "/mnt/target"
	}
	if !path.IsAbs(s.Target) || path.Clean(s.Target) != s.Target || s.Target == "/" {
		return nodeErr(field(m, "target"), "target %q must be an absolute, clean path other than /", s.Target)
	}
	return nil
}

func (s *Mount) Describe() string {
	if s.Existing {
		return "mount the existing (staged) root at " + s.Target
	}
	return "mount the target at " + s.Target
}

// Fetch gets an image package and verifies its signed manifest and the
// files' SHA-256 before anything uses them.
//
//	steps:
//	  - type: fetch
//	    manifest: http://10.0.2.2:8080/debian/manifest.json   # or medium:/images/debian/manifest.json
//	    mode: auto           # see below
//	    retries: 8
//	    timeout: 30m         # bound on the whole fetch
//	    package: debian-12   # optional: the manifest's name must be this
//	    min-version: "12.4"  # optional: refuse an older package_version
//
// The manifest's signature must be made for a package (not a sequence),
// not be expired, and, with package: and min-version:, name this package
// at this version or later: an older release signed by the same key
// (replayed by whoever controls the server) is refused.
//
// Modes: auto (the default) pipelines if the target has room and the
// manifest has chunk hashes, stages if it has room, else streams;
// pipeline downloads into the staging folder while the apply-image step
// right after reads it (chunk-verified; see package pe); stage downloads
// into the staging folder, verifies, then applies; stream applies straight
// from HTTP (chunk-verified), staging nothing. Pipeline and stream need a
// server that honours Range requests: auto over one that ignores them
// downloads the image whole, in order, before the apply reads it;
// an explicit pipeline or stream is refused ("the server ignores Range
// requests"). retries bounds the tries of each request after transient
// failures (connection errors, 5xx, 429, a connection idle for a minute).
type Fetch struct {
	StepBase `yaml:",inline"`
	Manifest string `yaml:"manifest"`
	Mode     string `yaml:"mode"`
	// Package, when set, is the name the signed manifest must carry, and
	// MinVersion the lowest package_version accepted (rollback
	// protection: an older package signed by the same key is refused).
	Package    string  `yaml:"package"`
	MinVersion Version `yaml:"min-version"`
}

func (s *Fetch) check(m *ast.MappingNode) error {
	if s.Manifest == "" {
		return nodeErr(m, "fetch needs manifest: an http(s) URL or medium:/path/manifest.json")
	}
	if p, ok := strings.CutPrefix(s.Manifest, "medium:"); ok {
		if !path.IsAbs(p) {
			return nodeErr(field(m, "manifest"), "medium path %q must be absolute (medium:/images/…/manifest.json)", p)
		}
		if s.Mode == "stream" || s.Mode == "stage" || s.Mode == "pipeline" {
			return nodeErr(field(m, "mode"), "mode %s is for HTTP sources; an image on the boot medium is verified and read in place", s.Mode)
		}
	} else if err := checkURL(field(m, "manifest"), s.Manifest); err != nil {
		return err
	}
	switch s.Mode {
	case "":
		s.Mode = "auto"
	case "auto", "stage", "stream", "pipeline":
	default:
		return nodeErr(field(m, "mode"), "mode %q: want auto, pipeline, stage or stream", s.Mode)
	}
	if s.Retries == 0 {
		s.Retries = 8
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(time.Hour)
	}
	return nil
}

func (s *Fetch) Describe() string {
	return fmt.Sprintf("fetch %s (%s, verified)", s.Manifest, s.Mode)
}

// Dir returns where the package's files are: the manifest's directory
// (a URL, or medium:/path), without a trailing slash.
func (s *Fetch) Dir() string {
	if p, ok := strings.CutPrefix(s.Manifest, "medium:"); ok {
		return "medium:" + path.Dir(p)
	}
	u, _ := url.Parse(s.Manifest)
	u.Path = path.Dir(u.Path)
	// Callers append "/" + file; a manifest at the server's root must not
	// give "//file".
	return strings.TrimSuffix(u.String(), "/")
}

// ApplyImage applies an image of the fetched WIM to the target root.
//
//	steps:
//	  - type: apply-image
//	    index: 1        # default: the manifest's image index
type ApplyImage struct {
	StepBase `yaml:",inline"`
	Index    int `yaml:"index"`
}

func (s *ApplyImage) check(m *ast.MappingNode) error {
	if s.Index < 0 {
		return nodeErr(field(m, "index"), "index %d: image indexes start at 1", s.Index)
	}
	return nil
}

func (s *ApplyImage) Describe() string {
	if s.Index > 0 {
		return fmt.Sprintf("apply image %d to the target", s.Index)
	}
	return "apply the manifest's image to the target"
}

// BootFiles makes the target bootable: a boot loader for the firmware and
// an entry booting the applied kernel with root= the target. When the
// sequence has a setup step, the first boot runs minint-setup as init.
//
//	steps:
//	  - type: bootfiles
//	    loader: auto           # auto (by firmware), shim, systemd-boot, syslinux or both
//	    cmdline: "console=ttyS0 quiet"
type BootFiles struct {
	StepBase `yaml:",inline"`
	Loader   string `yaml:"loader"`
	Cmdline  string `yaml:"cmdline"`
}

func (s *BootFiles) check(m *ast.MappingNode) error {
	switch s.Loader {
	case "":
		s.Loader = "auto"
	case "auto", "shim", "systemd-boot", "syslinux", "both":
	default:
		return nodeErr(field(m, "loader"), "loader %q: want auto (by firmware: shim under Secure Boot), shim (UEFI Secure Boot, the image's signed shim and GRUB), systemd-boot (UEFI), syslinux (BIOS) or both", s.Loader)
	}
	if strings.ContainsAny(s.Cmdline, "\n\r") {
		return nodeErr(field(m, "cmdline"), "cmdline must be one line")
	}
	return nil
}

func (s *BootFiles) Describe() string { return "write boot files (" + s.Loader + ")" }

// Setup hands an answer file to the deployed system's first boot: the
// keys are those of answer.Answer.
//
//	steps:
//	  - type: setup
//	    hostname: web1
//	    users:
//	      - {name: alice, password-hash: "$6$…", groups: [sudo], ssh-authorized-keys: ["ssh-ed25519 AAAA… alice"]}
//	    network:
//	      - {match: "en*", dhcp: true}
//	    files:
//	      - {path: /etc/motd, content: "hello\n", mode: "0644"}
//	    commands:
//	      - [/usr/bin/systemctl, enable, ssh]
type Setup struct {
	StepBase      `yaml:",inline"`
	answer.Answer `yaml:",inline"`
}

func (s *Setup) check(m *ast.MappingNode) error {
	if err := s.Answer.Validate(); err != nil {
		return nodeErr(m, "%v", err)
	}
	return nil
}

func (s *Setup) Describe() string {
	var p []string
	if s.Hostname != "" {
		p = append(p, "hostname "+s.Hostname)
	}
	if n := len(s.Users); n > 0 {
		p = append(p, plural.Count(n, "user"))
	}
	if n := len(s.Network); n > 0 {
		p = append(p, plural.Count(n, "interface"))
	}
	if n := len(s.Files); n > 0 {
		p = append(p, plural.Count(n, "file"))
	}
	if n := len(s.Commands); n > 0 {
		p = append(p, plural.Count(n, "command"))
	}
	if s.RestoreState != nil {
		p = append(p, "restore user state from "+s.RestoreState.StoreDir())
	}
	return "hand over to first-boot setup: " + strings.Join(p, ", ")
}

// Command (type run) runs a command in the PE (or, with in-target, chrooted into the
// target). Environment: MININT_TARGET, MININT_STAGING, MININT_DISK.
//
//	steps:
//	  - type: run
//	    command: [/bin/sh, -c, "echo hi"]     # or shell: "echo hi"
//	    timeout: 5m
//	    in-target: false
type Command struct {
	StepBase `yaml:",inline"`
	Command  []string          `yaml:"command"`
	Shell    string            `yaml:"shell"`
	InTarget bool              `yaml:"in-target"`
	Env      map[string]string `yaml:"env"`
}

func (s *Command) check(m *ast.MappingNode) error {
	if (len(s.Command) == 0) == (s.Shell == "") {
		return nodeErr(m, "run needs exactly one of command: [argv…] or shell: \"…\"")
	}
	if len(s.Command) > 0 && s.Command[0] == "" {
		return nodeErr(field(m, "command"), "command[0] is empty")
	}
	// execve takes C strings: a NUL would cut an argument (or the
	// environment) short, so the command run would not be the one shown.
	for i, a := range s.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return nodeErr(field(m, "command"), "command[%d] %q contains a NUL byte", i, a)
		}
	}
	if strings.IndexByte(s.Shell, 0) >= 0 {
		return nodeErr(field(m, "shell"), "shell contains a NUL byte")
	}
	for k, v := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return nodeErr(field(m, "env"), "env %q: a name must be non-empty without = or NUL, a value without NUL", k)
		}
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(time.Hour)
	}
	return nil
}

// Argv is the command to run: command, or shell run by /bin/sh -c.
func (s *Command) Argv() []string {
	if s.Shell != "" {
		return []string{"/bin/sh", "-c", s.Shell}
	}
	return s.Command
}

func (s *Command) Describe() string {
	where := ""
	if s.InTarget {
		where = " in the target"
	}
	return fmt.Sprintf("run%s: %s", where, strings.Join(s.Argv(), " "))
}

// Power reboots or powers off (type reboot or poweroff); the journal
// records it as done first, so the next boot does not repeat it.
//
//	steps:
//	  - type: reboot
//	    when: var.finish == reboot
//	  - type: poweroff
//	    when: var.finish != reboot
type Power struct {
	StepBase `yaml:",inline"`
}

func (s *Power) check(*ast.MappingNode) error { return nil }

func (s *Power) Describe() string { return s.Type }

// Clean (type clean) empties the existing root of an in-place refresh
// with diskops.CleanAllBut: everything except the staging folder /minint
// (user state, package, journal, the PE) and lost+found; mounts are never
// crossed; the list of what it deletes is written into /minint first.
// Before deleting, it checks that the package was verified and the user
// state captured, and makes the PE the persistent boot choice.
//
//	steps:
//	  - type: clean
type Clean struct {
	StepBase `yaml:",inline"`
}

func (s *Clean) check(*ast.MappingNode) error { return nil }

func (s *Clean) Describe() string {
	return "make the PE the boot default, then delete everything on the existing root except /minint"
}
