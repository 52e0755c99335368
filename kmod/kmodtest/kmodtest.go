// Package kmodtest makes small kernel module files for tests: valid ELF
// relocatable objects whose .modinfo section says what the test wants,
// optionally with a module signature trailer. They cannot be loaded into a
// kernel; they are for code that reads modules (kmod.ReadInfo, driver packs).
package kmodtest

import (
	"bytes"
	"encoding/binary"
)

// Module returns a .ko with a .modinfo section holding name=NAME,
// vermagic=VERMAGIC and the given "key=value" fields (depends=a,b,
// alias=pci:v…, firmware=x/y.bin, softdep=pre: z …).
func Module(name, vermagic string, fields ...string) []byte {
	var modinfo bytes.Buffer
	for _, kv := range append([]string{"name=" + name, "vermagic=" + vermagic}, fields...) {
		modinfo.WriteString(kv)
		modinfo.WriteByte(0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehSize, shSize = 64, 64
	modOff := ehSize
	strOff := modOff + modinfo.Len()
	shOff := (strOff + len(shstrtab) + 7) &^ 7
	out := make([]byte, shOff+3*shSize)
	copy(out, "\x7fELF")
	out[4], out[5], out[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le := binary.LittleEndian
	le.PutUint16(out[16:], 1)  // ET_REL
	le.PutUint16(out[18:], 62) // EM_X86_64
	le.PutUint32(out[20:], 1)  // EV_CURRENT
	le.PutUint64(out[40:], uint64(shOff))
	le.PutUint16(out[52:], ehSize)
	le.PutUint16(out[58:], shSize)
	le.PutUint16(out[60:], 3) // section headers
	le.PutUint16(out[62:], 2) // .shstrtab index
	copy(out[modOff:], modinfo.Bytes())
	copy(out[strOff:], shstrtab)
	sh := func(i int, name, typ uint32, flags, off, size uint64) {
		b := out[shOff+i*shSize:]
		le.PutUint32(b[0:], name)
		le.PutUint32(b[4:], typ)
		le.PutUint64(b[8:], flags)
		le.PutUint64(b[24:], off)
		le.PutUint64(b[32:], size)
		le.PutUint64(b[48:], 1) // alignment
	}
	sh(1, 1, 1, 2, uint64(modOff), uint64(modinfo.Len())) // .modinfo: PROGBITS, ALLOC
	sh(2, 10, 3, 0, uint64(strOff), uint64(len(shstrtab)))
	return out
}

// Sign appends a module signature trailer as scripts/sign-file writes it
// (the signature bytes are not a real PKCS#7 message).
func Sign(ko []byte) []byte {
	sig := bytes.Repeat([]byte{0x5a}, 64)
	trailer := make([]byte, 12)
	trailer[2] = 2 // id_type PKEY_ID_PKCS7
	binary.BigEndian.PutUint32(trailer[8:], uint32(len(sig)))
	out := append(append(append([]byte{}, ko...), sig...), trailer...)
	return append(out, "~Module signature appended~\n"...)
}
