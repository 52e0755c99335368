package bootloader

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/minint/minint/diskops"
	"golang.org/x/sys/unix"
)

// DefaultEFIVars is where the kernel exposes UEFI variables.
const DefaultEFIVars = "/sys/firmware/efi/efivars"

const (
	efiGlobalGUID   = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
	systemdBootGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f" // LoaderEntryOneShot & co.
	efiAttrNVBSRT   = 0x7
)

// EFIBootEntry describes a firmware boot entry (Boot####) that starts a
// loader from a GPT partition.
type EFIBootEntry struct {
	Description string
	// Partition is the ESP as found in the disk's table (number, start,
	// size, PARTUUID); SectorSize its disk's logical sector size.
	Partition  diskops.PartitionInfo
	SectorSize int
	// Loader is the path on the ESP, e.g. \EFI\systemd\systemd-bootx64.efi.
	Loader string
	// Args is passed to the loader as its load options (UTF-16), e.g. a
	// kernel command line when Loader is a kernel with an EFI stub.
	Args string
}

// EFIVars reads and writes UEFI variables through efivarfs. Dir is usually
// DefaultEFIVars; tests use a plain directory.
type EFIVars struct{ Dir string }

func (v EFIVars) path(name, guid string) string { return filepath.Join(v.Dir, name+"-"+guid) }

// Get returns a variable's data (without the attribute word).
func (v EFIVars) Get(name, guid string) ([]byte, error) {
	b, err := os.ReadFile(v.path(name, guid))
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("efivar %s: %d bytes", name, len(b))
	}
	return b[4:], nil
}

// Flag reads a one-byte global variable such as SecureBoot or SetupMode:
// true when it is there and 1.
func (v EFIVars) Flag(name string) bool {
	b, err := v.Get(name, efiGlobalGUID)
	return err == nil && len(b) == 1 && b[0] == 1
}

// Set writes a variable in the single write efivarfs requires, clearing
// the immutable flag the kernel puts on existing variables first.
func (v EFIVars) Set(name, guid string, data []byte) error {
	p := v.path(name, guid)
	clearImmutable(p)
	buf := make([]byte, 4+len(data))
	binary.LittleEndian.PutUint32(buf, efiAttrNVBSRT)
	copy(buf[4:], data)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("efivar %s: %w", name, err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("efivar %s: %w", name, err)
	}
	return f.Close()
}

const fsImmutableFL = 0x10 // FS_IMMUTABLE_FL from linux/fs.h

// clearImmutable drops the immutable flag efivarfs puts on existing
// variables, without which they can be neither rewritten nor removed. A
// missing variable or a file system without flags is left as it is: the
// write or remove that follows reports what is wrong.
func clearImmutable(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	fd := int(f.Fd())
	if flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil && flags&fsImmutableFL != 0 {
		unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL))
	}
}

// encodeLoadOption builds the EFI_LOAD_OPTION of a Boot#### variable: a
// hard-drive device path node for the GPT partition, a file path node for
// the loader, and the end node.
func encodeLoadOption(e EFIBootEntry) ([]byte, error) {
	sig, err := gptGUIDBytes(e.Partition.UUID)
	if err != nil {
		return nil, fmt.Errorf("ESP PARTUUID: %w", err)
	}
	ss := int64(e.SectorSize)
	if ss == 0 {
		ss = 512
	}
	var dp bytes.Buffer
	hd := make([]byte, 42)
	hd[0], hd[1] = 4, 1 // media, hard drive
	binary.LittleEndian.PutUint16(hd[2:], 42)
	binary.LittleEndian.PutUint32(hd[4:], uint32(e.Partition.Number))
	binary.LittleEndian.PutUint64(hd[8:], uint64(e.Partition.Start/ss))
	binary.LittleEndian.PutUint64(hd[16:], uint64(e.Partition.Size/ss))
	copy(hd[24:40], sig)
	hd[40], hd[41] = 2, 2 // GPT, GUID signature
	dp.Write(hd)
	loader := strings.ReplaceAll(e.Loader, "/", `\`)
	if !strings.HasPrefix(loader, `\`) {
		loader = `\` + loader
	}
	path := utf16le(loader)
	fp := make([]byte, 4, 4+len(path))
	fp[0], fp[1] = 4, 4 // media, file path
	binary.LittleEndian.PutUint16(fp[2:], uint16(4+len(path)))
	dp.Write(append(fp, path...))
	dp.Write([]byte{0x7f, 0xff, 4, 0})

	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(1)) // LOAD_OPTION_ACTIVE
	binary.Write(&b, binary.LittleEndian, uint16(dp.Len()))
	b.Write(utf16le(e.Description))
	b.Write(dp.Bytes())
	if e.Args != "" {
		b.Write(utf16le(e.Args))
	}
	return b.Bytes(), nil
}

// utf16le encodes s NUL-terminated.
func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s + "\x00"))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// gptGUIDBytes is the on-disk (mixed-endian) form of a GUID string.
func gptGUIDBytes(s string) ([]byte, error) {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 || len(s) != 36 {
		return nil, fmt.Errorf("GUID %q", s)
	}
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = h[3], h[2], h[1], h[0]
	b[4], b[5] = h[5], h[4]
	b[6], b[7] = h[7], h[6]
	copy(b[8:], h[8:])
	return b, nil
}

// AddBootEntry creates (or reuses, when one with the same description
// exists) a Boot#### variable for e. With first it also puts the entry
// first in BootOrder; without, BootOrder is left alone (an entry meant
// for BootNext only).
func (v EFIVars) AddBootEntry(e EFIBootEntry, first bool) (uint16, error) {
	opt, err := encodeLoadOption(e)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(v.Dir)
	if err != nil {
		return 0, fmt.Errorf("UEFI variables: %w", err)
	}
	used := map[uint16]bool{}
	num, found := uint16(0), false
	for _, de := range ents {
		n, ok := strings.CutSuffix(de.Name(), "-"+efiGlobalGUID)
		if !ok || len(n) != 8 || !strings.HasPrefix(n, "Boot") {
			continue
		}
		x, err := strconv.ParseUint(n[4:], 16, 16)
		if err != nil {
			continue
		}
		used[uint16(x)] = true
		if data, err := v.Get(n, efiGlobalGUID); err == nil && len(data) > 6 && bytes.HasPrefix(data[6:], utf16le(e.Description)) {
			num, found = uint16(x), true
		}
	}
	if !found {
		for used[num] {
			num++
		}
	}
	if err := v.Set(fmt.Sprintf("Boot%04X", num), efiGlobalGUID, opt); err != nil {
		return 0, err
	}
	if !first {
		return num, nil
	}
	order := []uint16{num}
	if old, err := v.Get("BootOrder", efiGlobalGUID); err == nil {
		for i := 0; i+1 < len(old); i += 2 {
			if x := binary.LittleEndian.Uint16(old[i:]); x != num {
				order = append(order, x)
			}
		}
	}
	ob := make([]byte, 2*len(order))
	for i, x := range order {
		binary.LittleEndian.PutUint16(ob[2*i:], x)
	}
	return num, v.Set("BootOrder", efiGlobalGUID, ob)
}

// SetBootNext makes the firmware start Boot#### num once, at the next boot.
func (v EFIVars) SetBootNext(num uint16) error {
	if _, err := os.Stat(v.path(fmt.Sprintf("Boot%04X", num), efiGlobalGUID)); err != nil {
		return fmt.Errorf("BootNext: Boot%04X: %w", num, diskops.ErrNotFound)
	}
	return v.Set("BootNext", efiGlobalGUID, binary.LittleEndian.AppendUint16(nil, num))
}

// SetLoaderOneShot makes systemd-boot start the loader entry id (the file
// name of an entry in loader/entries, e.g. "minint-pe.conf") once.
func (v EFIVars) SetLoaderOneShot(id string) error {
	return v.Set("LoaderEntryOneShot", systemdBootGUID, utf16le(id))
}

// HaveEFIVars reports whether dir is a usable efivarfs (i.e. the system
// runs under UEFI).
func HaveEFIVars(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == 0xde5e81e4 // EFIVARFS_MAGIC
}

var errNoEFI = errors.New("not running under UEFI (no efivarfs)")
