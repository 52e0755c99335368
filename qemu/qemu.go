// Package qemu runs QEMU guests for minint's end-to-end tests and for
// `minint qemu`: BIOS (SeaBIOS) or UEFI (OVMF) firmware, a CD or disk to
// boot, blank or given disks, user-mode networking, and the serial console
// captured line by line so that callers can wait for output and for the
// PE's JSON-lines events.
//
// A guest succeeds when it reports {"event":"pe","state":"done"} (the PE
// writes its events on the serial console with minint.events=serial; else
// its last line, "minint PE: done", says) and then QEMU exits by itself
// (the PE powers off); it fails on a "failed" event (or "minint PE FAILED:
// …"), a timeout, or QEMU dying first. With Options.Screen the guest has a
// screen: its frames on the serial console (minint.serial=screen) and its
// pictures (Screenshot) can be checked.
package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/minint/minint/bytesize"
	"github.com/minint/minint/internal/child"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Firmware choices.
const (
	BIOS = "bios"
	UEFI = "uefi"
)

// Disk is a disk attached to the guest.
type Disk struct {
	// Path is the image file. Empty means a blank disk of Size bytes in the
	// VM's work directory. A path that does not exist is created blank
	// with Size bytes.
	Path string
	Size int64
	// Format is "raw" (default) or "qcow2".
	Format string
	// Interface is virtio (default), sata, nvme, usb or ide, or a SCSI
	// host adapter the disk hangs off: scsi (virtio-scsi), megasas
	// (MegaRAID SAS 1078), megasas-gen2 (SAS 2108), lsi53c895a, pvscsi
	// (VMware) or mptsas1068. Each adapter is added once, its disks on it.
	Interface string
	// Serial is the serial number the guest sees ("" = QEMU's default,
	// minint-diskN on NVMe, which needs one).
	Serial string
	// Snapshot discards the guest's writes (QEMU -snapshot for this disk).
	Snapshot bool
	// Boot makes this disk the first boot device.
	Boot bool
	// ReadOnly attaches the disk read-only.
	ReadOnly bool
}

// Options configure a guest.
type Options struct {
	// ISO is attached as a CD unless BootFrom is "disk", in which case it
	// is attached as a read-only raw disk (as if written to a USB stick)
	// and booted from.
	ISO      string
	BootFrom string // "cd" (default), "disk" or "net" (PXE from the NIC)
	// CDInterface is the CD drive's controller: ide (default; the PC's
	// own), sata (AHCI) or scsi (virtio-scsi).
	CDInterface string
	// DiskFirst puts the disks marked Boot before the ISO in the boot
	// order, as on a new computer with an installation CD inserted: a
	// blank disk falls through to the CD, and once the PE has deployed the
	// disk the reboot starts the installed system (with AllowReboot).
	DiskFirst bool
	// BootDiskInterface is the interface for the ISO when BootFrom is
	// "disk": virtio (default), usb, sata, nvme.
	BootDiskInterface string

	// Direct kernel boot (no firmware boot loader).
	Kernel, Initrd, Append string

	Firmware string // bios (default) or uefi
	Disks    []Disk
	Mem      string // a size (package bytesize), whole MiB; default 512M
	CPUs     int    // default 1

	// NoNet leaves out the network card. Otherwise the guest has a virtio
	// NIC on QEMU's user-mode network (the host is 10.0.2.2).
	NoNet bool
	// NICs are more network cards, each on a user-mode network of its
	// own (each gets a DHCP lease, 10.0.2.15) or on a tap device. With
	// NoNet and BootFrom "net" the first of them boots (a PXE test on a
	// network of its own).
	NICs []NIC
	// HostFwd are hostfwd rules, e.g. "tcp:127.0.0.1:2222-:22".
	HostFwd []string
	// TFTPDir and BootFile make QEMU's user network serve TFTP from
	// TFTPDir and offer BootFile by DHCP, for BootFrom "net".
	TFTPDir, BootFile string
	// GuestFwd are guestfwd rules, e.g. "tcp:10.0.2.100:80-cmd:..." or
	// "tcp:10.0.2.100:80-tcp:127.0.0.1:8080".
	GuestFwd []string

	// Screen gives the guest a VGA card (its text console is what a
	// technician would see; VM.Screenshot takes a picture of it) instead
	// of none, and a QMP monitor socket in the work directory.
	Screen bool

	// Timeout bounds the whole run (Run) or each wait; 0 means 2 minutes.
	Timeout time.Duration
	KVM     bool // use KVM instead of TCG (broken on some hosts)
	// AllowReboot lets a guest reboot; by default QEMU exits instead
	// (-no-reboot), so a reboot ends the run.
	AllowReboot bool

	// LogPath receives the raw serial console output.
	LogPath string
	// Console receives the raw serial console output as it arrives.
	Console io.Writer
	// Stdin is connected to the serial console (nil for none). Give an
	// *os.File (a terminal, or an os.Pipe to type into): another reader is
	// copied by a goroutine that Wait waits for, so the VM would not be
	// seen exiting before the reader ends.
	Stdin io.Reader

	// WorkDir holds the private OVMF variables and blank disks; empty
	// means a temporary directory removed when the VM ends.
	WorkDir string
	// Binary is the QEMU program (default qemu-system-x86_64).
	Binary string
	// OVMFCode and OVMFVars default to Debian's 4M OVMF files (for the
	// SecureBoot choice when one is made).
	OVMFCode, OVMFVars string
	// SecureBoot starts OVMF with Secure Boot enforced and a key set
	// enrolled: SecureBootMicrosoft or SecureBootSnakeoil. Empty means
	// OVMF without Secure Boot. Needs Firmware UEFI.
	SecureBoot string
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
}

// NIC is a network card of a model QEMU emulates: virtio-net-pci, e1000,
// e1000e, rtl8139, vmxnet3, pcnet …
type NIC struct {
	Model string
	// Tap is a tap device on the host to attach to instead of a user-mode
	// network (the test makes it and its bridge).
	Tap string
	// Netdev is any other QEMU -netdev backend, without its id (e.g.
	// "socket,udp=127.0.0.1:5000,localaddr=127.0.0.1:5001": the test
	// then sees the guest's raw Ethernet frames).
	Netdev string
	MAC    string // "" = QEMU's default (52:54:00:12:34:5N)
}

// Default OVMF files (Debian package ovmf).
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// OVMFSecureBootCode is the SMM build that Secure Boot needs.
	OVMFSecureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
)

// Secure Boot key sets of Debian's ovmf package (OVMF_VARS_4M.<name>.fd).
const (
	// SecureBootMicrosoft: Microsoft's KEK and db (the Windows and UEFI
	// CAs), as on almost every PC; shim-signed boots there.
	SecureBootMicrosoft = "ms"
	// SecureBootSnakeoil: a test key in PK, KEK and db whose private key
	// and certificate ship in the package (SnakeoilKey, SnakeoilCert;
	// the key's password is "snakeoil").
	SecureBootSnakeoil = "snakeoil"
	SnakeoilKey        = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	SnakeoilCert       = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// Errors a run can end with.
var (
	ErrMissingHost = errors.New("missing host dependency")
	ErrTimeout     = errors.New("guest timed out")
	ErrGuestFailed = errors.New("guest reported failure")
	ErrExited      = errors.New("QEMU exited")
)

// Event is one JSON-lines event from the guest's console.
type Event struct {
	Kind  string         `json:"event"`
	State string         `json:"state,omitempty"`
	Op    string         `json:"op,omitempty"`
	Msg   string         `json:"msg,omitempty"`
	Error string         `json:"error,omitempty"`
	Done  int64          `json:"done,omitempty"` // progress events
	Total int64          `json:"total,omitempty"`
	Data  map[string]any `json:"data,omitempty"`
	// Raw is the whole JSON object; At is when it arrived after QEMU
	// started.
	Raw json.RawMessage `json:"-"`
	At  time.Duration   `json:"-"`
}

// Line is one line of console output.
type Line struct {
	Text string
	At   time.Duration
}

// VM is a running guest.
type VM struct {
	opts    Options
	cmd     *exec.Cmd
	args    []string
	start   time.Time
	workDir string
	rmWork  bool
	logFile *os.File

	mu      sync.Mutex
	lines   []Line
	events  []Event
	frames  []Frame
	changed chan struct{} // closed and replaced on every new line
	exited  bool
	exitErr error
	done    chan struct{} // closed when QEMU has exited and output is drained
}

// Args returns QEMU's command line (without the program name).
func (vm *VM) Args() []string { return vm.args }

// Start launches QEMU.
func Start(ctx context.Context, o Options) (*VM, error) {
	if o.Binary == "" {
		o.Binary = "qemu-system-x86_64"
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("%w: %s not found: install the Debian package qemu-system-x86 (apt-get install qemu-system-x86)", ErrMissingHost, o.Binary)
	}
	vm := &VM{opts: o, changed: make(chan struct{}), done: make(chan struct{})}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "minint-qemu-*")
		if err != nil {
			return nil, err
		}
		vm.workDir, vm.rmWork = d, true
	} else {
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			return nil, err
		}
		vm.workDir = o.WorkDir
	}
	fail := func(err error) (*VM, error) {
		if vm.rmWork {
			os.RemoveAll(vm.workDir)
		}
		return nil, err
	}
	args, err := vm.buildArgs()
	if err != nil {
		return fail(err)
	}
	vm.args = args
	if o.LogPath != "" {
		f, err := os.Create(o.LogPath)
		if err != nil {
			return fail(fmt.Errorf("console log: %w", err))
		}
		vm.logFile = f
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = o.Stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	vm.cmd = cmd
	vm.start = time.Now()
	// A guest must not outlive minint, even when minint is SIGKILLed.
	if err := child.Start(cmd); err != nil {
		if vm.logFile != nil {
			vm.logFile.Close()
		}
		return fail(fmt.Errorf("starting QEMU: %w", err))
	}
	readDone := make(chan struct{})
	go func() {
		vm.readConsole(stdout)
		close(readDone)
	}()
	go func() {
		<-readDone
		err := cmd.Wait()
		if err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				err = fmt.Errorf("%w: %s", err, msg)
			}
		}
		vm.mu.Lock()
		vm.exited, vm.exitErr = true, err
		close(vm.changed)
		vm.changed = make(chan struct{})
		vm.mu.Unlock()
		if vm.logFile != nil {
			vm.logFile.Close()
		}
		if vm.rmWork {
			os.RemoveAll(vm.workDir)
		}
		close(vm.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			vm.Kill()
		case <-vm.done:
		}
	}()
	return vm, nil
}

func (vm *VM) buildArgs() ([]string, error) {
	o := vm.opts
	args, err := vm.machineArgs()
	if err != nil {
		return nil, err
	}
	fw, err := vm.firmwareArgs()
	if err != nil {
		return nil, err
	}
	args = append(args, fw...)
	st, bootIndex, err := vm.storageArgs()
	if err != nil {
		return nil, err
	}
	args = append(args, st...)
	if o.Kernel != "" {
		args = append(args, "-kernel", o.Kernel)
		if o.Initrd != "" {
			args = append(args, "-initrd", o.Initrd)
		}
		if o.Append != "" {
			args = append(args, "-append", o.Append)
		}
	}
	net, err := vm.netArgs(bootIndex)
	if err != nil {
		return nil, err
	}
	args = append(args, net...)
	return append(args, o.ExtraArgs...), nil
}

// machineArgs: CPU, memory, no default devices, the serial console on
// stdio, and the screen (none, or a VGA card and a QMP socket).
func (vm *VM) machineArgs() ([]string, error) {
	o := vm.opts
	accel := "tcg"
	if o.KVM {
		accel = "kvm"
	}
	mem := 512 * bytesize.MiB
	if o.Mem != "" {
		var err error
		if mem, err = bytesize.Parse(o.Mem); err != nil {
			return nil, fmt.Errorf("memory: %w", err)
		}
	}
	if mem < bytesize.MiB || mem%bytesize.MiB != 0 {
		return nil, fmt.Errorf("memory %s: want a whole number of MiB", mem.Explain())
	}
	cpus := o.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	// -nodefaults: no empty CD drive, floppy or default NIC that would
	// show up in the guest's inventory; every device is explicit.
	args := []string{"-accel", accel, "-m", strconv.FormatInt(int64(mem/bytesize.MiB), 10) + "M", "-smp", strconv.Itoa(cpus), "-nodefaults"}
	if o.Screen {
		args = append(args, "-display", "none", "-device", "VGA", "-serial", "stdio",
			"-qmp", "unix:"+vm.qmpPath()+",server=on,wait=off", "-monitor", "none")
	} else {
		args = append(args, "-nographic", "-monitor", "none", "-serial", "stdio")
	}
	if !o.AllowReboot {
		args = append(args, "-no-reboot")
	}
	return args, nil
}

func (vm *VM) qmpPath() string { return filepath.Join(vm.workDir, "qmp.sock") }

// firmwareArgs: SeaBIOS (QEMU's own) or OVMF with its code read-only and
// a private copy of its variable store, which the firmware writes (boot
// entries), so that guests neither share nor spoil it. With Secure Boot
// the code is Debian's SMM build, which refuses to run without SMM: the
// machine becomes a q35 with SMM on and its flash writable from SMM only,
// as on real hardware.
func (vm *VM) firmwareArgs() ([]string, error) {
	o := vm.opts
	if o.SecureBoot != "" && o.Firmware != UEFI {
		return nil, fmt.Errorf("Secure Boot (%s) needs UEFI firmware", o.SecureBoot)
	}
	switch o.Firmware {
	case "", BIOS:
		return nil, nil
	case UEFI:
	default:
		return nil, fmt.Errorf("unknown firmware %q: want bios or uefi", o.Firmware)
	}
	code, vars := o.OVMFCode, o.OVMFVars
	var machine []string
	switch o.SecureBoot {
	case "":
		if code == "" {
			code = DefaultOVMFCode
		}
		if vars == "" {
			vars = DefaultOVMFVars
		}
	case SecureBootMicrosoft, SecureBootSnakeoil:
		if code == "" {
			code = OVMFSecureBootCode
		}
		if vars == "" {
			vars = "/usr/share/OVMF/OVMF_VARS_4M." + o.SecureBoot + ".fd"
		}
		machine = []string{"-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"}
	default:
		return nil, fmt.Errorf("unknown Secure Boot keys %q: want %s or %s", o.SecureBoot, SecureBootMicrosoft, SecureBootSnakeoil)
	}
	for _, f := range []string{code, vars} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w: UEFI firmware %s not found: install the Debian package ovmf (apt-get install ovmf)", ErrMissingHost, f)
		}
	}
	myVars := filepath.Join(vm.workDir, "OVMF_VARS.fd")
	if err := copyFile(vars, myVars); err != nil {
		return nil, fmt.Errorf("copying OVMF variables: %w", err)
	}
	return append(machine,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,unit=1,file="+myVars), nil
}

// scsiHBAs are the SCSI host adapters a disk can hang off, by Interface.
var scsiHBAs = map[string]string{
	"scsi": "virtio-scsi-pci", "megasas": "megasas", "megasas-gen2": "megasas-gen2",
	"lsi53c895a": "lsi53c895a", "pvscsi": "pvscsi", "mptsas1068": "mptsas1068",
}

// buses adds controllers as disks need them and hands out their ports.
type buses struct {
	args     []string
	have     map[string]bool
	sataPort int
	scsiUnit map[string]int
}

// controller adds the controller named id (device dev) once.
func (b *buses) controller(id, dev string) {
	if !b.have[id] {
		b.args = append(b.args, "-device", dev+",id="+id)
		b.have[id] = true
	}
}

// device returns the -device value for a drive on iface.
func (b *buses) device(id, iface, serial string) (string, error) {
	ser := ""
	if serial != "" {
		ser = ",serial=" + serial
	}
	switch iface {
	case "", "virtio":
		return "virtio-blk-pci,drive=" + id + ser, nil
	case "sata", "cdrom-sata":
		b.controller("ahci0", "ahci")
		kind := "ide-hd"
		if iface == "cdrom-sata" {
			kind = "ide-cd"
		}
		b.sataPort++
		return fmt.Sprintf("%s,drive=%s,bus=ahci0.%d%s", kind, id, b.sataPort-1, ser), nil
	case "ide":
		return "ide-hd,drive=" + id + ser, nil
	case "cdrom", "cdrom-ide":
		return "ide-cd,drive=" + id, nil
	case "nvme":
		if serial == "" {
			serial = "minint-" + id
		}
		return fmt.Sprintf("nvme,drive=%s,serial=%s", id, serial), nil
	case "usb":
		b.controller("xhci0", "qemu-xhci")
		return "usb-storage,bus=xhci0.0,drive=" + id + ser, nil
	case "cdrom-scsi":
		b.controller("scsi0", "virtio-scsi-pci")
		return "scsi-cd,bus=scsi0.0,drive=" + id, nil
	}
	if dev, ok := scsiHBAs[iface]; ok {
		hba := strings.ReplaceAll(iface, "-", "") + "0"
		if iface == "scsi" {
			hba = "scsi0"
		}
		b.controller(hba, dev)
		unit := b.scsiUnit[hba]
		b.scsiUnit[hba]++
		// lsi53c895a has one bus of 7 targets; spread disks over targets,
		// which every HBA model accepts.
		return fmt.Sprintf("scsi-hd,bus=%s.0,scsi-id=%d,lun=0,drive=%s%s", hba, unit, id, ser), nil
	}
	return "", fmt.Errorf("unknown disk interface %q: want virtio, sata, nvme, usb, ide or a SCSI adapter (scsi, megasas, megasas-gen2, lsi53c895a, pvscsi, mptsas1068)", iface)
}

// storageArgs attaches the ISO and the disks; it returns the next free
// boot index.
func (vm *VM) storageArgs() ([]string, int, error) {
	o := vm.opts
	b := &buses{have: map[string]bool{}, scsiUnit: map[string]int{}}
	var drives []string
	bootIndex := 0
	// nextBoot hands out boot indexes in attach order, except that with
	// DiskFirst the ISO's comes after every disk's.
	nextBoot := func(iso bool) int {
		if iso && o.DiskFirst {
			return len(o.Disks) + 1
		}
		bootIndex++
		return bootIndex - 1
	}
	attach := func(id, file, format, iface, serial, extra string, boot bool) error {
		dev, err := b.device(id, iface, serial)
		if err != nil {
			return err
		}
		if boot {
			dev += fmt.Sprintf(",bootindex=%d", nextBoot(strings.HasPrefix(id, "cd") || id == "boot0"))
		}
		drives = append(drives, "-drive", fmt.Sprintf("if=none,id=%s,file=%s,format=%s%s", id, file, format, extra), "-device", dev)
		return nil
	}
	if strings.ContainsAny(o.ISO, ",") {
		return nil, 0, fmt.Errorf("ISO path %q contains a comma, which QEMU cannot take", o.ISO)
	}
	if o.ISO != "" {
		if _, err := os.Stat(o.ISO); err != nil {
			return nil, 0, fmt.Errorf("ISO: %w", err)
		}
		var err error
		switch o.BootFrom {
		case "net":
			err = attach("cd0", o.ISO, "raw", "cdrom", "", ",media=cdrom,readonly=on", false)
		case "", "cd":
			iface := "cdrom"
			if o.CDInterface != "" {
				iface += "-" + o.CDInterface
			}
			err = attach("cd0", o.ISO, "raw", iface, "", ",media=cdrom,readonly=on", o.Kernel == "")
		case "disk":
			err = attach("boot0", o.ISO, "raw", o.BootDiskInterface, "", ",readonly=on", o.Kernel == "")
		default:
			err = fmt.Errorf("unknown boot device %q: want cd, disk or net", o.BootFrom)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	for i, d := range o.Disks {
		path, format, err := vm.diskFile(i, d)
		if err != nil {
			return nil, 0, err
		}
		extra := ""
		if d.Snapshot {
			extra += ",snapshot=on"
		}
		if d.ReadOnly {
			extra += ",readonly=on"
		}
		if err := attach(fmt.Sprintf("disk%d", i), path, format, d.Interface, d.Serial, extra, d.Boot); err != nil {
			return nil, 0, err
		}
	}
	return append(b.args, drives...), bootIndex, nil
}

// diskFile returns disk i's image, creating a blank one when needed.
func (vm *VM) diskFile(i int, d Disk) (path, format string, err error) {
	path, format = d.Path, d.Format
	if format == "" {
		format = "raw"
	}
	if path == "" {
		path = filepath.Join(vm.workDir, fmt.Sprintf("disk%d.%s", i, format))
	}
	if strings.Contains(path, ",") {
		return "", "", fmt.Errorf("disk path %q contains a comma, which QEMU cannot take", path)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if d.Size <= 0 {
			return "", "", fmt.Errorf("disk %s does not exist and no size was given to create it", path)
		}
		if err := createDisk(path, format, d.Size); err != nil {
			return "", "", err
		}
	} else if err != nil {
		return "", "", err
	}
	return path, format, nil
}

// netArgs: the default virtio NIC on QEMU's user-mode network (unless
// NoNet) and the NICs asked for.
func (vm *VM) netArgs(bootIndex int) ([]string, error) {
	o := vm.opts
	netBoot := o.BootFrom == "net"
	if netBoot && o.NoNet && len(o.NICs) == 0 {
		return nil, fmt.Errorf("boot from the network without a network card (NoNet)")
	}
	var args []string
	if o.NoNet && len(o.NICs) == 0 {
		return []string{"-nic", "none"}, nil
	}
	user := func(id string) string {
		netdev := "user,id=" + id
		if o.TFTPDir != "" {
			netdev += ",tftp=" + o.TFTPDir
		}
		if o.BootFile != "" {
			netdev += ",bootfile=" + o.BootFile
		}
		for _, f := range o.HostFwd {
			netdev += ",hostfwd=" + f
		}
		for _, f := range o.GuestFwd {
			netdev += ",guestfwd=" + f
		}
		return netdev
	}
	if !o.NoNet {
		nic := "virtio-net-pci,netdev=net0"
		if netBoot {
			nic += fmt.Sprintf(",bootindex=%d", bootIndex)
		}
		// The NIC's iPXE option ROM is only used to PXE-boot under
		// SeaBIOS. Elsewhere it costs seconds (its Ctrl-B prompt), and
		// under OVMF Debian's 2019 iPXE EFI ROM loads a UKI but the
		// kernel then hangs after the EFI stub; OVMF's own PXE works.
		if !netBoot || o.Firmware == UEFI {
			nic += ",romfile="
		}
		args = append(args, "-netdev", user("net0"), "-device", nic)
	}
	for i, n := range o.NICs {
		id := fmt.Sprintf("nic%d", i+1)
		netdev := user(id)
		switch {
		case n.Tap != "":
			netdev = "tap,id=" + id + ",ifname=" + n.Tap + ",script=no,downscript=no"
		case n.Netdev != "":
			kind, rest, _ := strings.Cut(n.Netdev, ",")
			netdev = kind + ",id=" + id
			if rest != "" {
				netdev += "," + rest
			}
		}
		model := n.Model
		if model == "" {
			model = "virtio-net-pci"
		}
		if strings.ContainsAny(model+n.Tap+n.MAC, ", ") {
			return nil, fmt.Errorf("NIC %+v: QEMU cannot take commas or spaces there", n)
		}
		dev := model + ",netdev=" + id
		if netBoot && o.NoNet && i == 0 {
			// The first NIC boots, as the default one would (see above).
			dev += fmt.Sprintf(",bootindex=%d", bootIndex)
			if o.Firmware == UEFI {
				dev += ",romfile="
			}
		} else {
			dev += ",romfile="
		}
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		args = append(args, "-netdev", netdev, "-device", dev)
	}
	return args, nil
}

func createDisk(path, format string, size int64) error {
	switch format {
	case "raw":
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case "qcow2":
		img, err := exec.LookPath("qemu-img")
		if err != nil {
			return fmt.Errorf("%w: qemu-img not found: install the Debian package qemu-utils (apt-get install qemu-utils)", ErrMissingHost)
		}
		if msg, err := child.CombinedOutput(exec.Command(img, "create", "-q", "-f", "qcow2", path, strconv.FormatInt(size, 10))); err != nil {
			return fmt.Errorf("qemu-img create %s: %v: %s", path, err, bytes.TrimSpace(msg))
		}
		return nil
	default:
		return fmt.Errorf("unknown disk format %q: want raw or qcow2", format)
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// readConsole splits the serial output into lines (a guest ends them with
// CR LF, firmware sometimes with bare CR) and picks out JSON events.
func (vm *VM) readConsole(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	var cur []byte
	flush := func() {
		text := ansiRE.ReplaceAllString(strings.TrimRight(string(cur), "\r"), "")
		cur = cur[:0]
		at := time.Since(vm.start)
		ev, isEvent := parseEvent(text)
		vm.mu.Lock()
		vm.lines = append(vm.lines, Line{Text: text, At: at})
		if isEvent {
			ev.At = at
			vm.events = append(vm.events, ev)
		}
		close(vm.changed)
		vm.changed = make(chan struct{})
		vm.mu.Unlock()
	}
	buf := make([]byte, 32<<10)
	var fs frameScanner
	for {
		n, err := br.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if done := fs.feed(chunk); len(done) > 0 {
				at := time.Since(vm.start)
				vm.mu.Lock()
				for _, f := range done {
					vm.frames = append(vm.frames, Frame{Lines: frameLines(f), At: at})
				}
				close(vm.changed)
				vm.changed = make(chan struct{})
				vm.mu.Unlock()
			}
			if vm.opts.Console != nil {
				vm.opts.Console.Write(chunk)
			}
			if vm.logFile != nil {
				vm.logFile.Write(chunk)
			}
			for _, c := range chunk {
				if c == '\n' {
					flush()
					continue
				}
				cur = append(cur, c)
			}
		}
		if err != nil {
			break
		}
	}
	if len(cur) > 0 {
		flush()
	}
}

// ansiRE matches terminal control sequences (firmware and boot loaders
// clear and position the screen); Line texts are kept without them.
var ansiRE = regexp.MustCompile(`\x1b(\[[0-9;?=]*[ -/]*[@-~]|[@-Z\\-_]|[c78=>])`)

// parseEvent finds a JSON object with an "event" key in a console line.
// Kernel messages can share the line (printk interleaves with user
// output), so the object is looked for from each '{'.
func parseEvent(line string) (Event, bool) {
	for i := strings.IndexByte(line, '{'); i >= 0; {
		s := line[i:]
		if j := strings.LastIndexByte(s, '}'); j >= 0 {
			s = s[:j+1]
			var e Event
			dec := json.NewDecoder(strings.NewReader(s))
			var raw json.RawMessage
			if dec.Decode(&raw) == nil && json.Unmarshal(raw, &e) == nil && e.Kind != "" {
				e.Raw = raw
				return e, true
			}
		}
		k := strings.IndexByte(line[i+1:], '{')
		if k < 0 {
			break
		}
		i += 1 + k
	}
	return Event{}, false
}

// Lines returns the console lines so far.
func (vm *VM) Lines() []Line {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]Line(nil), vm.lines...)
}

// Events returns the guest's events so far.
func (vm *VM) Events() []Event {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]Event(nil), vm.events...)
}

// Elapsed is the time since QEMU started.
func (vm *VM) Elapsed() time.Duration { return time.Since(vm.start) }

// WaitFor waits until a console line (any since start) matches re and
// returns it. It fails when ctx ends, the timeout passes, or QEMU exits
// without such a line.
func (vm *VM) WaitFor(ctx context.Context, re *regexp.Regexp) (Line, error) {
	var found Line
	err := vm.wait(ctx, "console line matching "+re.String(), func() bool {
		for _, l := range vm.lines {
			if re.MatchString(l.Text) {
				found = l
				return true
			}
		}
		return false
	})
	return found, err
}

// WaitEvent waits for an event (any since start) for which match is true.
func (vm *VM) WaitEvent(ctx context.Context, what string, match func(Event) bool) (Event, error) {
	var found Event
	err := vm.wait(ctx, what, func() bool {
		for _, e := range vm.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// IsEvent matches events of one kind and, when state is not empty, state.
func IsEvent(kind, state string) func(Event) bool {
	return func(e Event) bool { return e.Kind == kind && (state == "" || e.State == state) }
}

func (vm *VM) wait(ctx context.Context, what string, cond func() bool) error {
	timeout := vm.opts.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		vm.mu.Lock()
		ok := cond()
		exited, exitErr, ch := vm.exited, vm.exitErr, vm.changed
		vm.mu.Unlock()
		if ok {
			return nil
		}
		if exited {
			return fmt.Errorf("%w before %s (exit: %v)%s", ErrExited, what, exitErr, vm.tail())
		}
		select {
		case <-ch:
		case <-timer.C:
			return fmt.Errorf("%w after %s waiting for %s%s", ErrTimeout, timeout, what, vm.tail())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// tail returns the last console lines, for error messages.
func (vm *VM) tail() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	n := len(vm.lines)
	from := max(0, n-15)
	var b strings.Builder
	b.WriteString("; last console lines:")
	for _, l := range vm.lines[from:] {
		b.WriteString("\n\t" + l.Text)
	}
	return b.String()
}

// Wait waits for QEMU to exit and returns its exit error.
func (vm *VM) Wait() error {
	<-vm.done
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.exitErr
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.done }

// Kill ends QEMU at once (SIGKILL), like pulling the power cord.
func (vm *VM) Kill() error {
	if vm.cmd == nil || vm.cmd.Process == nil {
		return nil
	}
	select {
	case <-vm.done:
		return nil
	default:
	}
	return syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
}

// Result summarises a finished run.
type Result struct {
	Events   []Event
	Banner   time.Duration // when the PE banner appeared (0 if never)
	Done     time.Duration // when the final event arrived
	Duration time.Duration // until QEMU exited
}

// verdictRE matches the PE's last line on a console in line mode.
var verdictRE = regexp.MustCompile(`^minint PE(?:: done| (FAILED): (.*))$`)

// BannerRE matches the PE's banner line, "minint PE <id> (kernel …)", and
// not GRUB's "Booting `minint PE'" before it.
var BannerRE = regexp.MustCompile(`minint PE [0-9a-f(]`)

// Run boots a guest and waits for the PE's verdict: nil when the guest
// reports {"event":"pe","state":"done"} and QEMU then exits by itself;
// ErrGuestFailed, ErrTimeout or ErrExited otherwise. The VM is always
// ended before Run returns.
func Run(ctx context.Context, o Options) (*Result, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	vm, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		vm.Kill()
		vm.Wait()
	}()
	return vm.Verdict(ctx)
}

// Verdict waits for the PE's final event and QEMU's exit; see Run.
func (vm *VM) Verdict(ctx context.Context) (*Result, error) {
	res := &Result{}
	var final Event
	err := vm.wait(ctx, `{"event":"pe","state":"done"|"failed"} or the PE's last line`, func() bool {
		for _, e := range vm.events {
			if e.Kind == "pe" && (e.State == "done" || e.State == "failed") {
				final = e
				return true
			}
		}
		// Without minint.events=serial the PE's last readable line says.
		for _, l := range vm.lines {
			if m := verdictRE.FindStringSubmatch(l.Text); m != nil {
				final = Event{Kind: "pe", State: "done", At: l.At}
				if m[1] != "" {
					final.State, final.Error = "failed", m[2]
				}
				return true
			}
		}
		return false
	})
	fill := func() {
		res.Events = vm.Events()
		for _, l := range vm.Lines() {
			if BannerRE.MatchString(l.Text) {
				res.Banner = l.At
				break
			}
		}
	}
	if err != nil {
		fill()
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return res, err
	}
	res.Done = final.At
	if final.State == "failed" {
		fill()
		return res, fmt.Errorf("%w: %s%s", ErrGuestFailed, final.Error, vm.tail())
	}
	// The PE powers off after "done": QEMU must exit by itself.
	grace := time.NewTimer(60 * time.Second)
	defer grace.Stop()
	select {
	case <-vm.done:
	case <-grace.C:
		fill()
		return res, fmt.Errorf("%w: guest reported done but QEMU did not exit within 60s (no poweroff?)%s", ErrTimeout, vm.tail())
	case <-ctx.Done():
		fill()
		return res, fmt.Errorf("%w: guest reported done but QEMU did not exit: %w", ErrTimeout, ctx.Err())
	}
	fill()
	res.Duration = vm.Elapsed()
	if err := vm.Wait(); err != nil {
		return res, fmt.Errorf("%w with an error after the guest reported done: %w", ErrExited, err)
	}
	return res, nil
}
