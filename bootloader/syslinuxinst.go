package bootloader

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/minint/minint/internal/child"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/minint/minint/diskops"
)

// SyslinuxPayload is syslinux's BIOS code for a FAT partition, captured
// once from the syslinux installer on the build host (CaptureSyslinux) and
// shipped in the PE, where InstallSyslinux installs it in pure Go: the PE
// has neither the syslinux program nor the mtools it runs.
type SyslinuxPayload struct {
	// Ldlinux is ldlinux.sys without its two trailing ADV sectors.
	Ldlinux []byte
	// BootSector is a FAT32 boot sector carrying syslinux's boot code; its
	// jump, OEM name and code area are copied, the BPB never is.
	BootSector []byte
	// LdlinuxC32 is the matching ldlinux.c32 library.
	LdlinuxC32 []byte
	// MBR and GPTMBR are syslinux's master boot record code (mbr.bin,
	// gptmbr.bin), so that the payload directory is all the PE needs.
	MBR, GPTMBR []byte
}

// Payload file names in a payload directory.
const (
	SyslinuxPayloadDir = "/usr/lib/minint/syslinux"
	payloadSys         = "ldlinux.sys"
	payloadBS          = "ldlinux.bss"
	payloadC32         = "ldlinux.c32"
	ldlinuxMagic       = 0x3eb202fe
)

// CaptureSyslinux runs the syslinux installer (program, default
// "syslinux") on a scratch FAT32 image and extracts the payload from it.
func CaptureSyslinux(ctx context.Context, program string) (*SyslinuxPayload, error) {
	if program == "" {
		program = "syslinux"
	}
	dir, err := os.MkdirTemp("", "minint-syslinux")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "fat.img")
	f, err := os.Create(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const size = 40 << 20
	if err := f.Truncate(size); err != nil {
		return nil, err
	}
	if _, err := diskops.FormatFAT32(f, 0, size, diskops.FATOptions{}); err != nil {
		return nil, err
	}
	// The installer moves its files into the directory, which must exist.
	if out, err := child.CombinedOutput(exec.CommandContext(ctx, "mmd", "-i", img, "::/syslinux")); err != nil {
		return nil, fmt.Errorf("mmd (mtools): %v: %s", err, out)
	}
	if out, err := child.CombinedOutput(exec.CommandContext(ctx, program, "--install", "--directory", "/syslinux", img)); err != nil {
		return nil, fmt.Errorf("%s --install: %v: %s", program, err, out)
	}
	v, err := openFAT32(f, 0)
	if err != nil {
		return nil, err
	}
	p := &SyslinuxPayload{BootSector: make([]byte, 512)}
	if _, err := f.ReadAt(p.BootSector, 0); err != nil {
		return nil, err
	}
	sys, err := v.readFile("SYSLINUX", "LDLINUX SYS")
	if err != nil {
		return nil, fmt.Errorf("captured ldlinux.sys: %w", err)
	}
	if len(sys) <= 2*advSize {
		return nil, fmt.Errorf("captured ldlinux.sys is only %d bytes", len(sys))
	}
	p.Ldlinux = sys[:len(sys)-2*advSize]
	if p.LdlinuxC32, err = v.readFile("SYSLINUX", "LDLINUX C32"); err != nil {
		return nil, fmt.Errorf("captured ldlinux.c32: %w", err)
	}
	for _, m := range []struct {
		name string
		dst  *[]byte
	}{{"mbr.bin", &p.MBR}, {"gptmbr.bin", &p.GPTMBR}} {
		if *m.dst, err = os.ReadFile(filepath.Join("/usr/lib/syslinux/mbr", m.name)); err != nil {
			return nil, fmt.Errorf("%w: syslinux %s (Debian package syslinux-common): %v", diskops.ErrNotFound, m.name, err)
		}
	}
	return p, p.check()
}

func (p *SyslinuxPayload) check() error {
	if len(p.BootSector) != 512 || p.BootSector[510] != 0x55 || p.BootSector[511] != 0xAA {
		return fmt.Errorf("syslinux payload: bad boot sector")
	}
	if len(p.Ldlinux)%512 != 0 {
		return fmt.Errorf("syslinux payload: ldlinux.sys is %d bytes, not whole sectors", len(p.Ldlinux))
	}
	if _, _, err := p.patchArea(p.Ldlinux); err != nil {
		return err
	}
	if len(p.LdlinuxC32) == 0 {
		return fmt.Errorf("syslinux payload: empty ldlinux.c32")
	}
	return nil
}

// Save writes the payload as ldlinux.sys, ldlinux.bss and ldlinux.c32.
func (p *SyslinuxPayload) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for n, b := range map[string][]byte{payloadSys: p.Ldlinux, payloadBS: p.BootSector, payloadC32: p.LdlinuxC32, "mbr.bin": p.MBR, "gptmbr.bin": p.GPTMBR} {
		if len(b) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// LoadSyslinuxPayload reads a payload saved by Save.
func LoadSyslinuxPayload(dir string) (*SyslinuxPayload, error) {
	p := &SyslinuxPayload{}
	for n, dst := range map[string]*[]byte{payloadSys: &p.Ldlinux, payloadBS: &p.BootSector, payloadC32: &p.LdlinuxC32} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("%w: syslinux payload: %v", diskops.ErrNotFound, err)
		}
		*dst = b
	}
	// MBR code is optional in a payload (InstallSyslinux then reads
	// SyslinuxDir).
	p.MBR, _ = os.ReadFile(filepath.Join(dir, "mbr.bin"))
	p.GPTMBR, _ = os.ReadFile(filepath.Join(dir, "gptmbr.bin"))
	return p, p.check()
}

// WriteFiles puts /syslinux/ldlinux.sys (with an empty ADV) and
// /syslinux/ldlinux.c32 on the mounted FAT boot partition. InstallSyslinux
// then patches ldlinux.sys in place for where the filesystem put it.
func (p *SyslinuxPayload) WriteFiles(bootDir string) error {
	d := filepath.Join(bootDir, "syslinux")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	adv := make([]byte, advSize)
	advFinish(adv, nil)
	sys := append(append(append([]byte(nil), p.Ldlinux...), adv...), adv...)
	if err := os.WriteFile(filepath.Join(d, "ldlinux.sys"), sys, 0o444); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "ldlinux.c32"), p.LdlinuxC32, 0o644)
}

// patchArea finds struct patch_area (by LDLINUX_MAGIC) and the extended
// patch area it points to.
func (p *SyslinuxPayload) patchArea(img []byte) (pa, epa int, err error) {
	for i := 0; i+32 <= len(img); i += 4 {
		if binary.LittleEndian.Uint32(img[i:]) == ldlinuxMagic {
			epa = int(binary.LittleEndian.Uint16(img[i+22:]))
			if epa+20 > len(img) {
				break
			}
			return i, epa, nil
		}
	}
	return 0, 0, fmt.Errorf("syslinux payload: no patch area in ldlinux.sys")
}

// patch is syslinux_patch: it records where ldlinux.sys lives (sectors,
// 512-byte units relative to the partition; the boot code adds the hidden
// sectors) in the boot sector and in ldlinux.sys itself.
func (p *SyslinuxPayload) patch(sectors []int64, dir string) (img, bs []byte, err error) {
	img = append([]byte(nil), p.Ldlinux...)
	nsect := (len(img)+511)/512 + 2
	if len(sectors) < nsect {
		return nil, nil, fmt.Errorf("ldlinux.sys occupies %d sectors, need %d", len(sectors), nsect)
	}
	pa, epa, err := p.patchArea(img)
	if err != nil {
		return nil, nil, err
	}
	le := binary.LittleEndian
	u16 := func(off int) int { return int(le.Uint16(img[off:])) }
	bs = make([]byte, 512)
	sect1lo, sect1hi := u16(epa+14), u16(epa+16)
	if sect1lo+4 > 510 || sect1hi+4 > 510 {
		return nil, nil, fmt.Errorf("syslinux payload: boot sector pointer out of range")
	}
	le.PutUint32(bs[sect1lo:], uint32(sectors[0]))
	le.PutUint32(bs[sect1hi:], uint32(sectors[0]>>32))
	sectors = sectors[1:]
	dw := len(img) / 4
	le.PutUint16(img[pa+8:], uint16(nsect-2))
	le.PutUint16(img[pa+10:], 2)
	le.PutUint32(img[pa+12:], uint32(dw))

	// Sector extents, as generate_extents builds them: runs of consecutive
	// sectors that stay within one 64 KiB segment of the load address.
	exOff, nptrs := u16(epa+10), u16(epa+12)
	if exOff+10*nptrs > len(img) {
		return nil, nil, fmt.Errorf("syslinux payload: extent table out of range")
	}
	clear(img[exOff : exOff+10*nptrs])
	type ext struct {
		lba int64
		n   int
	}
	var exts []ext
	addr, base := uint32(0x8000), uint32(0x8000)
	for _, s := range sectors[:nsect-1-2] {
		if l := len(exts); l > 0 {
			e := &exts[l-1]
			xbytes := uint32(e.n+1) * 512
			if s == e.lba+int64(e.n) && xbytes < 65536 && (addr^(base+xbytes-1))&0xffff0000 == 0 {
				e.n++
				addr += 512
				continue
			}
		}
		base = addr
		exts = append(exts, ext{s, 1})
		addr += 512
	}
	if len(exts) > nptrs {
		return nil, nil, fmt.Errorf("ldlinux.sys is in %d pieces, syslinux can load %d: the FAT is too fragmented", len(exts), nptrs)
	}
	for i, e := range exts {
		le.PutUint64(img[exOff+10*i:], uint64(e.lba))
		le.PutUint16(img[exOff+10*i+8:], uint16(e.n))
	}
	advp := u16(epa)
	le.PutUint64(img[advp:], uint64(sectors[nsect-1-2]))
	le.PutUint64(img[advp+8:], uint64(sectors[nsect-1-1]))
	if dir != "" {
		dOff, dLen := u16(epa+2), u16(epa+4)
		if len(dir)+1 > dLen || dOff+dLen > len(img) {
			return nil, nil, fmt.Errorf("syslinux directory %q too long", dir)
		}
		copy(img[dOff:], append([]byte(dir), 0))
	}
	le.PutUint32(img[pa+16:], 0)
	sum := uint32(ldlinuxMagic)
	for i := 0; i < dw; i++ {
		sum -= le.Uint32(img[4*i:])
	}
	le.PutUint32(img[pa+16:], sum)
	return img, bs, nil
}

// installPayload patches /syslinux/ldlinux.sys where it lies on the
// (unmounted) FAT32 partition at partStart of f and writes syslinux's boot
// sector, keeping the partition's BPB.
func installPayload(f *os.File, partStart int64, p *SyslinuxPayload) error {
	v, err := openFAT32(f, partStart)
	if err != nil {
		return err
	}
	chain, size, err := v.lookup("SYSLINUX", "LDLINUX SYS")
	if err != nil {
		return fmt.Errorf("/syslinux/ldlinux.sys (write it with WriteFiles first): %w", err)
	}
	if size != int64(len(p.Ldlinux))+2*advSize {
		return fmt.Errorf("/syslinux/ldlinux.sys is %d bytes, the payload's is %d: not written by this payload", size, len(p.Ldlinux)+2*advSize)
	}
	var sectors []int64
	spc := v.spc * v.bps / 512
	for _, c := range chain {
		first := (v.clusterOffset(c) - partStart) / 512
		for i := int64(0); i < spc; i++ {
			sectors = append(sectors, first+i)
		}
	}
	img, sect1, err := p.patch(sectors, "/syslinux")
	if err != nil {
		return err
	}
	// Write the patched loader over its own sectors, ADV untouched.
	for i := 0; i < len(img)/512; i++ {
		if _, err := f.WriteAt(img[512*i:512*(i+1)], partStart+512*sectors[i]); err != nil {
			return err
		}
	}
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, partStart); err != nil {
		return err
	}
	copy(bs[0:11], p.BootSector[0:11])
	copy(bs[90:510], p.BootSector[90:510])
	_, epa, _ := p.patchArea(img)
	le := binary.LittleEndian
	for _, o := range []int{int(le.Uint16(img[epa+14:])), int(le.Uint16(img[epa+16:]))} {
		copy(bs[o:o+4], sect1[o:o+4])
	}
	if _, err := f.WriteAt(bs, partStart); err != nil {
		return err
	}
	if bk := int64(le.Uint16(bs[50:])); bk > 0 && bk < int64(le.Uint16(bs[14:])) {
		if _, err := f.WriteAt(bs, partStart+bk*512); err != nil {
			return err
		}
	}
	return nil
}

// advFinish fills an ADV sector with records and its checksums.
func advFinish(out, recs []byte) {
	clear(out)
	copy(out[8:], recs)
	binary.LittleEndian.PutUint32(out[0:], advMagic1)
	sum := uint32(advMagic2)
	for i := 8; i < advSize-4; i += 4 {
		sum -= binary.LittleEndian.Uint32(out[i:])
	}
	binary.LittleEndian.PutUint32(out[4:], sum)
	binary.LittleEndian.PutUint32(out[advSize-4:], advMagic3)
}
