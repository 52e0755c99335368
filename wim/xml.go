package wim

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// xmlNode is a generic element so that fields we do not interpret (WINDOWS,
// FLAGS, ...) survive export and append untouched.
type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []*xmlNode `xml:",any"`
}

func (n *xmlNode) child(name string) *xmlNode {
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			return c
		}
	}
	return nil
}

func (n *xmlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *xmlNode) setAttr(name, v string) {
	for i := range n.Attrs {
		if n.Attrs[i].Name.Local == name {
			n.Attrs[i].Value = v
			return
		}
	}
	n.Attrs = append(n.Attrs, xml.Attr{Name: xml.Name{Local: name}, Value: v})
}

// set replaces (or adds, or with v=="" removes) a text child.
func (n *xmlNode) set(name, v string) {
	for i, c := range n.Nodes {
		if c.XMLName.Local == name {
			if v == "" {
				n.Nodes = append(n.Nodes[:i], n.Nodes[i+1:]...)
				return
			}
			c.Text, c.Nodes = v, nil
			return
		}
	}
	if v != "" {
		n.Nodes = append(n.Nodes, &xmlNode{XMLName: xml.Name{Local: name}, Text: v})
	}
}

func (n *xmlNode) setTime(name string, t Filetime) {
	c := n.child(name)
	if c == nil {
		c = &xmlNode{XMLName: xml.Name{Local: name}}
		n.Nodes = append(n.Nodes, c)
	}
	c.Text = ""
	c.Nodes = []*xmlNode{
		{XMLName: xml.Name{Local: "HIGHPART"}, Text: fmt.Sprintf("0x%08X", uint32(t>>32))},
		{XMLName: xml.Name{Local: "LOWPART"}, Text: fmt.Sprintf("0x%08X", uint32(t))},
	}
}

func (n *xmlNode) text(name string) string {
	if c := n.child(name); c != nil {
		return strings.TrimSpace(c.Text)
	}
	return ""
}

func (n *xmlNode) uint(name string) uint64 {
	v, _ := strconv.ParseUint(n.text(name), 0, 64)
	return v
}

func (n *xmlNode) time(name string) Filetime {
	c := n.child(name)
	if c == nil {
		return 0
	}
	hi, _ := strconv.ParseUint(c.text("HIGHPART"), 0, 32)
	lo, _ := strconv.ParseUint(c.text("LOWPART"), 0, 32)
	return Filetime(hi<<32 | lo)
}

func (n *xmlNode) clone() *xmlNode {
	c := &xmlNode{XMLName: n.XMLName, Text: n.Text, Attrs: append([]xml.Attr(nil), n.Attrs...)}
	for _, k := range n.Nodes {
		c.Nodes = append(c.Nodes, k.clone())
	}
	return c
}

func (n *xmlNode) write(b *bytes.Buffer) {
	b.WriteByte('<')
	b.WriteString(n.XMLName.Local)
	for _, a := range n.Attrs {
		b.WriteString(" " + a.Name.Local + `="`)
		xml.EscapeText(b, []byte(a.Value))
		b.WriteByte('"')
	}
	b.WriteByte('>')
	if len(n.Nodes) == 0 {
		xml.EscapeText(b, []byte(n.Text))
	}
	for _, c := range n.Nodes {
		c.write(b)
	}
	b.WriteString("</" + n.XMLName.Local + ">")
}

// decodeXMLData converts the UTF-16LE XML resource to a UTF-8 string,
// refusing more than maxXMLElements elements before they are parsed.
func decodeXMLData(b []byte) (string, error) {
	le := binary.LittleEndian
	n := len(b) / 2
	i := 0
	if n > 0 && le.Uint16(b) == 0xfeff {
		i = 1
	}
	for n > i && le.Uint16(b[2*(n-1):]) == 0 {
		n--
	}
	var sb strings.Builder
	sb.Grow(n - i)
	elements := 0
	for ; i < n; i++ {
		r := rune(le.Uint16(b[2*i:]))
		switch {
		case r == '<':
			if elements++; elements > maxXMLElements {
				return "", formatErr("XML data has more than %d elements", maxXMLElements)
			}
		case utf16.IsSurrogate(r) && i+1 < n:
			if d := utf16.DecodeRune(r, rune(le.Uint16(b[2*i+2:]))); d != utf8.RuneError {
				r = d
				i++
			}
		}
		sb.WriteRune(r) // a lone surrogate becomes U+FFFD, as utf16.Decode makes it
	}
	return sb.String(), nil
}

func encodeXMLData(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2+2*len(u))
	binary.LittleEndian.PutUint16(b, 0xfeff)
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2+2*i:], c)
	}
	return b
}

func parseXML(s string) (*xmlNode, error) {
	if strings.TrimSpace(s) == "" {
		return &xmlNode{XMLName: xml.Name{Local: "WIM"}}, nil
	}
	root := &xmlNode{}
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = false
	if err := d.Decode(root); err != nil {
		return nil, formatErr("XML data: %v", err)
	}
	if root.XMLName.Local != "WIM" {
		return nil, formatErr("XML data: root element <%s>, want <WIM>", root.XMLName.Local)
	}
	return root, nil
}
