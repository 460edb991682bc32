package tokenstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The codecs read the tracking tokens Axon Framework stores (XStream XML or Jackson JSON, TOKENSTORE.md
// section 2) and rewrite the positions inside them. A rewrite splices new numbers into the byte ranges
// where the old ones were, so that everything else (class attributes, a replay's context object, key
// order, map kinds) stays byte for byte what Axon wrote. Anything that is not one of the known shapes is
// refused rather than guessed at: a token rewritten wrongly makes a processor skip or repeat events.

var (
	// ErrUnsupported: a token the tool cannot rewrite exactly (a binary serializer, GapAwareTrackingToken,
	// an unknown token type or field).
	ErrUnsupported = errors.New("token not supported")
	// ErrMalformed: a token's bytes are not what its token type says.
	ErrMalformed = errors.New("token malformed")
)

// Format is a token's serialized form.
type Format int

const (
	FormatNone    Format = iota // a NULL token
	FormatXStream               // XStream XML (Axon 4's default serializer)
	FormatJackson               // Jackson JSON
)

func (f Format) String() string {
	switch f {
	case FormatXStream:
		return "xstream"
	case FormatJackson:
		return "jackson"
	}
	return "none"
}

// Kind is the simple class name of a token.
type Kind string

const (
	KindGlobalSequence Kind = "GlobalSequenceTrackingToken"
	KindReplay         Kind = "ReplayToken"
	KindMerged         Kind = "MergedTrackingToken"
	KindMultiSource    Kind = "MultiSourceTrackingToken"
	kindGapAware       Kind = "GapAwareTrackingToken"
)

// The packages of the token classes: Axon Framework 4, Axon Framework 5, and before 4.0 (legacy).
const (
	packageAF4    = "org.axonframework.eventhandling."
	packageAF5    = "org.axonframework.messaging.eventhandling.processing.streaming.token."
	packageLegacy = "org.axonframework.eventsourcing.eventstore."
)

// kindOf maps a fully qualified class name to the kind of token, or refuses it.
func kindOf(class string) (Kind, error) {
	var simple string
	switch {
	case strings.HasPrefix(class, packageAF4) && !strings.Contains(class[len(packageAF4):], "."):
		simple = class[len(packageAF4):]
	case strings.HasPrefix(class, packageAF5) && !strings.Contains(class[len(packageAF5):], "."):
		simple = class[len(packageAF5):]
		if Kind(simple) == KindMultiSource {
			simple = "" // gone in Axon Framework 5
		}
	case strings.HasPrefix(class, packageLegacy) && !strings.Contains(class[len(packageLegacy):], "."):
		simple = class[len(packageLegacy):]
		if Kind(simple) != KindGlobalSequence && Kind(simple) != kindGapAware {
			simple = ""
		}
	}
	switch k := Kind(simple); k {
	case KindGlobalSequence, KindReplay, KindMerged, KindMultiSource:
		return k, nil
	case kindGapAware:
		return "", fmt.Errorf("%w: %s belongs to JDBC/JPA event stores, whose positions are not Axon Server tokens", ErrUnsupported, class)
	}
	return "", fmt.Errorf("%w: unknown token type %s", ErrUnsupported, class)
}

// Token is a decoded tracking token.
type Token struct {
	Type   string // the class name (the row's token type)
	Format Format
	Root   *Node
	raw    []byte
	spans  []span // where each position's digits are in raw, in byte order
}

type span struct{ start, end int }

// Node is one token inside a token.
type Node struct {
	Kind    Kind
	Index   int64 // GlobalSequenceTrackingToken
	Reset   *Node // ReplayToken: the token at reset
	Current *Node // ReplayToken: where the replay is; nil = not started
	Lower   *Node // MergedTrackingToken
	Upper   *Node // MergedTrackingToken
	Sources []Source
	span    span
}

// Source is one entry of a MultiSourceTrackingToken; Token nil = not started.
type Source struct {
	Name  string
	Token *Node
}

// String shows a token the way a reader of Axon's toString would recognise it, with short names.
func (n *Node) String() string {
	if n == nil {
		return "null"
	}
	switch n.Kind {
	case KindGlobalSequence:
		return strconv.FormatInt(n.Index, 10)
	case KindReplay:
		return fmt.Sprintf("Replay(reset=%s, current=%s)", n.Reset, n.Current)
	case KindMerged:
		return fmt.Sprintf("Merged(%s, %s)", n.Lower, n.Upper)
	case KindMultiSource:
		parts := make([]string, len(n.Sources))
		for i, s := range n.Sources {
			parts[i] = s.Name + "=" + s.Token.String()
		}
		return "MultiSource{" + strings.Join(parts, ", ") + "}"
	}
	return string(n.Kind)
}

// Positions returns every GlobalSequenceTrackingToken index in the token, in byte order.
func (t *Token) Positions() []int64 {
	var out []int64
	var walk func(n *Node)
	walk = func(n *Node) {
		if n == nil {
			return
		}
		switch n.Kind {
		case KindGlobalSequence:
			out = append(out, n.Index)
		case KindReplay:
			walk(n.Reset)
			walk(n.Current)
		case KindMerged:
			walk(n.Lower)
			walk(n.Upper)
		case KindMultiSource:
			for _, s := range n.Sources {
				walk(s.Token)
			}
		}
	}
	walk(t.Root)
	return out
}

// Rewrite returns the token's bytes with every position p replaced by f(p), everything else unchanged.
func (t *Token) Rewrite(f func(int64) int64) []byte {
	var nodes []*Node
	var walk func(n *Node)
	walk = func(n *Node) {
		if n == nil {
			return
		}
		switch n.Kind {
		case KindGlobalSequence:
			nodes = append(nodes, n)
		case KindReplay:
			walk(n.Reset)
			walk(n.Current)
		case KindMerged:
			walk(n.Lower)
			walk(n.Upper)
		case KindMultiSource:
			for _, s := range n.Sources {
				walk(s.Token)
			}
		}
	}
	walk(t.Root)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].span.start < nodes[j].span.start })
	out := make([]byte, 0, len(t.raw)+8*len(nodes))
	last := 0
	for _, n := range nodes {
		out = append(out, t.raw[last:n.span.start]...)
		out = strconv.AppendInt(out, f(n.Index), 10)
		last = n.span.end
	}
	return append(out, t.raw[last:]...)
}

// maxTokenSize bounds what Decode accepts: Axon's tokens are a few hundred bytes (JPA declares the column
// 10,000 bytes long); a multi-source token with many sources is the largest.
const maxTokenSize = 1 << 20

// maxDepth bounds nesting (a replay of a merge of merges …), so that a crafted token cannot exhaust the
// stack.
const maxDepth = 32

// Decode reads a token of class tokenType from its serialized bytes.
func Decode(tokenType string, raw []byte) (*Token, error) {
	if len(raw) > maxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, more than a token's %d", ErrUnsupported, len(raw), maxTokenSize)
	}
	if _, err := kindOf(tokenType); err != nil {
		return nil, err
	}
	t := &Token{Type: tokenType, raw: raw}
	var err error
	switch {
	case len(raw) > 0 && raw[0] == '<':
		t.Format = FormatXStream
		t.Root, err = decodeXStream(tokenType, raw)
	case len(raw) > 0 && raw[0] == '{':
		t.Format = FormatJackson
		t.Root, err = decodeJackson(tokenType, raw)
	case len(raw) >= 2 && raw[0] == 0xac && raw[1] == 0xed:
		return nil, fmt.Errorf("%w: Java-serialized (JavaSerializer); only XStream XML and Jackson JSON tokens can be rewritten exactly", ErrUnsupported)
	default:
		return nil, fmt.Errorf("%w: neither XML nor JSON (CBOR or another binary serializer?); only XStream XML and Jackson JSON tokens can be rewritten exactly", ErrUnsupported)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ---- XStream ----

// xmlNode is an element of XStream's compact XML: no whitespace between elements, no declaration.
type xmlNode struct {
	name     string
	attrs    []xmlAttr
	children []*xmlNode
	text     string // character data of a leaf, still escaped
	textSpan span
	empty    bool // written <name/>
}

type xmlAttr struct{ name, value string }

func (n *xmlNode) attr(name string) (string, bool) {
	for _, a := range n.attrs {
		if a.name == name {
			return a.value, true
		}
	}
	return "", false
}

type xmlParser struct {
	b   []byte
	pos int
}

func decodeXStream(tokenType string, raw []byte) (*Node, error) {
	p := &xmlParser{b: raw}
	root, err := p.element(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(raw) {
		return nil, malformed("XML: bytes after the root element at offset %d", p.pos)
	}
	if root.name != tokenType {
		return nil, malformed("XML root element is %s, the token type says %s", root.name, tokenType)
	}
	if len(root.attrs) > 0 {
		return nil, fmt.Errorf("%w: XML root element has attributes", ErrUnsupported)
	}
	return xstreamToken(root, tokenType, 0)
}

func (p *xmlParser) element(depth int) (*xmlNode, error) {
	if depth > maxDepth*4 {
		return nil, malformed("XML nested deeper than %d", maxDepth*4)
	}
	if p.pos >= len(p.b) || p.b[p.pos] != '<' {
		return nil, malformed("XML: element expected at offset %d", p.pos)
	}
	p.pos++
	name := p.name()
	if name == "" {
		return nil, malformed("XML: element name expected at offset %d (comments, declarations and CDATA are not XStream's compact form)", p.pos)
	}
	n := &xmlNode{name: name}
	for {
		if p.pos >= len(p.b) {
			return nil, malformed("XML: <%s> not closed", name)
		}
		switch c := p.b[p.pos]; {
		case c == '>':
			p.pos++
			goto content
		case c == '/' && p.pos+1 < len(p.b) && p.b[p.pos+1] == '>':
			p.pos += 2
			n.empty = true
			return n, nil
		case c == ' ':
			p.pos++
			an := p.name()
			if an == "" || p.pos+1 >= len(p.b) || p.b[p.pos] != '=' || p.b[p.pos+1] != '"' {
				return nil, malformed("XML: attribute expected at offset %d", p.pos)
			}
			p.pos += 2
			end := strings.IndexByte(string(p.b[p.pos:]), '"')
			if end < 0 {
				return nil, malformed("XML: attribute %s not closed", an)
			}
			v := string(p.b[p.pos : p.pos+end])
			if strings.ContainsAny(v, "<&") {
				return nil, fmt.Errorf("%w: XML attribute %s=%q with markup or entities", ErrUnsupported, an, v)
			}
			for _, a := range n.attrs {
				if a.name == an {
					return nil, malformed("XML: attribute %s twice", an)
				}
			}
			n.attrs = append(n.attrs, xmlAttr{an, v})
			p.pos += end + 1
		default:
			return nil, malformed("XML: unexpected %q in <%s> at offset %d", c, name, p.pos)
		}
	}
content:
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] != '<' {
		p.pos++
	}
	if p.pos > start {
		n.text = string(p.b[start:p.pos])
		n.textSpan = span{start, p.pos}
		if err := checkEntities(n.text); err != nil {
			return nil, err
		}
	}
	for {
		if p.pos+1 >= len(p.b) {
			return nil, malformed("XML: <%s> not closed", name)
		}
		if p.b[p.pos+1] == '/' {
			p.pos += 2
			if end := p.name(); end != name || p.pos >= len(p.b) || p.b[p.pos] != '>' {
				return nil, malformed("XML: </%s> expected at offset %d", name, p.pos)
			}
			p.pos++
			return n, nil
		}
		if n.text != "" {
			return nil, fmt.Errorf("%w: XML mixed content in <%s>", ErrUnsupported, name)
		}
		child, err := p.element(depth + 1)
		if err != nil {
			return nil, err
		}
		n.children = append(n.children, child)
		if p.pos < len(p.b) && p.b[p.pos] != '<' {
			return nil, fmt.Errorf("%w: XML text between elements in <%s> at offset %d", ErrUnsupported, name, p.pos)
		}
	}
}

func (p *xmlParser) name() string {
	start := p.pos
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		if c == '.' || c == '-' || c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			p.pos++
			continue
		}
		break
	}
	return string(p.b[start:p.pos])
}

// checkEntities accepts the five predefined entities and character references, which XStream writes.
func checkEntities(s string) error {
	for i := strings.IndexByte(s, '&'); i >= 0; i = strings.IndexByte(s, '&') {
		s = s[i+1:]
		end := strings.IndexByte(s, ';')
		if end < 0 {
			return malformed("XML: & without ;")
		}
		switch ent := s[:end]; {
		case ent == "amp" || ent == "lt" || ent == "gt" || ent == "quot" || ent == "apos":
		case len(ent) > 1 && ent[0] == '#':
		default:
			return malformed("XML: unknown entity &%s;", ent)
		}
		s = s[end+1:]
	}
	return nil
}

// xstreamToken interprets element n as a token of class class.
func xstreamToken(n *xmlNode, class string, depth int) (*Node, error) {
	if depth > maxDepth {
		return nil, malformed("tokens nested deeper than %d", maxDepth)
	}
	kind, err := kindOf(class)
	if err != nil {
		return nil, err
	}
	if n.text != "" || n.empty {
		return nil, malformed("XML: <%s> has no fields", n.name)
	}
	fields := map[string]*xmlNode{}
	for _, c := range n.children {
		if _, dup := fields[c.name]; dup {
			return nil, malformed("XML: field %s twice in %s", c.name, class)
		}
		fields[c.name] = c
	}
	allow := func(names ...string) error {
		for name := range fields {
			ok := false
			for _, a := range names {
				ok = ok || a == name
			}
			if !ok {
				return fmt.Errorf("%w: unknown field %s in %s", ErrUnsupported, name, class)
			}
		}
		return nil
	}
	// nested reads a field holding a token: its class attribute names the token's class.
	nested := func(name string, required bool) (*Node, error) {
		f := fields[name]
		if f == nil {
			if required {
				return nil, malformed("XML: %s has no %s", class, name)
			}
			return nil, nil
		}
		c, ok := f.attr("class")
		if !ok || len(f.attrs) != 1 {
			return nil, fmt.Errorf("%w: XML field %s of %s without exactly a class attribute (an XStream reference?)", ErrUnsupported, name, class)
		}
		return xstreamToken(f, c, depth+1)
	}
	node := &Node{Kind: kind}
	switch kind {
	case KindGlobalSequence:
		if err := allow("globalIndex"); err != nil {
			return nil, err
		}
		f := fields["globalIndex"]
		if f == nil || len(f.attrs) > 0 || len(f.children) > 0 {
			return nil, malformed("XML: %s without a plain globalIndex", class)
		}
		v, err := parseIndex(f.text)
		if err != nil {
			return nil, err
		}
		node.Index, node.span = v, f.textSpan
	case KindReplay:
		if err := allow("tokenAtReset", "currentToken", "context"); err != nil {
			return nil, err
		}
		if node.Reset, err = nested("tokenAtReset", true); err != nil {
			return nil, err
		}
		if node.Current, err = nested("currentToken", false); err != nil {
			return nil, err
		}
	case KindMerged:
		if err := allow("lowerSegmentToken", "upperSegmentToken"); err != nil {
			return nil, err
		}
		if node.Lower, err = nested("lowerSegmentToken", true); err != nil {
			return nil, err
		}
		if node.Upper, err = nested("upperSegmentToken", true); err != nil {
			return nil, err
		}
	case KindMultiSource:
		if err := allow("trackingTokens"); err != nil {
			return nil, err
		}
		m := fields["trackingTokens"]
		if m == nil {
			return nil, malformed("XML: %s has no trackingTokens", class)
		}
		if m.text != "" {
			return nil, malformed("XML: trackingTokens has text")
		}
		seen := map[string]bool{}
		for _, e := range m.children {
			if e.name != "entry" || len(e.attrs) > 0 || len(e.children) != 2 {
				return nil, malformed("XML: trackingTokens holds <%s>, not a two-element entry", e.name)
			}
			k, v := e.children[0], e.children[1]
			if k.name != "string" || len(k.attrs) > 0 || len(k.children) > 0 {
				return nil, fmt.Errorf("%w: MultiSourceTrackingToken key <%s> is not a string", ErrUnsupported, k.name)
			}
			if seen[k.text] {
				return nil, malformed("XML: source %s twice", k.text)
			}
			seen[k.text] = true
			src := Source{Name: xmlUnescape(k.text)}
			if v.name != "null" || !v.empty || len(v.attrs) > 0 {
				if len(v.attrs) > 0 {
					return nil, fmt.Errorf("%w: MultiSourceTrackingToken source %s with attributes (an XStream reference?)", ErrUnsupported, src.Name)
				}
				if src.Token, err = xstreamToken(v, v.name, depth+1); err != nil {
					return nil, err
				}
			}
			node.Sources = append(node.Sources, src)
		}
	}
	return node, nil
}

func xmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'").Replace(s)
}

// parseIndex reads a position as Java's Long.toString writes it.
func parseIndex(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(v, 10) != s {
		return 0, malformed("globalIndex %q is not a whole number", s)
	}
	return v, nil
}

// ---- Jackson ----

// jsonValue is a parsed JSON value with the byte range of a number.
type jsonValue struct {
	kind   byte // '{', '[', '"', '0' (number), 't', 'f', 'n'
	keys   []string
	values []*jsonValue // object members in order, or array elements
	str    string       // decoded string
	lit    string       // number literal
	span   span
}

func (v *jsonValue) member(key string) *jsonValue {
	for i, k := range v.keys {
		if k == key {
			return v.values[i]
		}
	}
	return nil
}

type jsonParser struct {
	b   []byte
	pos int
}

func decodeJackson(tokenType string, raw []byte) (*Node, error) {
	p := &jsonParser{b: raw}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(raw) {
		return nil, malformed("JSON: bytes after the token at offset %d", p.pos)
	}
	pkg := tokenType[:strings.LastIndexByte(tokenType, '.')+1]
	return jacksonToken(v, tokenType, pkg, "", 0)
}

func (p *jsonParser) space() {
	for p.pos < len(p.b) && (p.b[p.pos] == ' ' || p.b[p.pos] == '\t' || p.b[p.pos] == '\n' || p.b[p.pos] == '\r') {
		p.pos++
	}
}

func (p *jsonParser) value(depth int) (*jsonValue, error) {
	if depth > maxDepth*4 {
		return nil, malformed("JSON nested deeper than %d", maxDepth*4)
	}
	p.space()
	if p.pos >= len(p.b) {
		return nil, malformed("JSON: value expected at the end")
	}
	start := p.pos
	switch c := p.b[p.pos]; {
	case c == '{' || c == '[':
		v := &jsonValue{kind: c}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		p.pos++
		p.space()
		if p.pos < len(p.b) && p.b[p.pos] == closer {
			p.pos++
			v.span = span{start, p.pos}
			return v, nil
		}
		for {
			if c == '{' {
				p.space()
				k, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				if k.kind != '"' {
					return nil, malformed("JSON: object key expected at offset %d", k.span.start)
				}
				for _, seen := range v.keys {
					if seen == k.str {
						return nil, malformed("JSON: key %q twice", k.str)
					}
				}
				p.space()
				if p.pos >= len(p.b) || p.b[p.pos] != ':' {
					return nil, malformed("JSON: ':' expected at offset %d", p.pos)
				}
				p.pos++
				v.keys = append(v.keys, k.str)
			}
			e, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			v.values = append(v.values, e)
			p.space()
			if p.pos >= len(p.b) {
				return nil, malformed("JSON: %q not closed", c)
			}
			if p.b[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.b[p.pos] != closer {
				return nil, malformed("JSON: ',' or %q expected at offset %d", closer, p.pos)
			}
			p.pos++
			v.span = span{start, p.pos}
			return v, nil
		}
	case c == '"':
		p.pos++
		for p.pos < len(p.b) && p.b[p.pos] != '"' {
			if p.b[p.pos] == '\\' {
				p.pos++
			}
			p.pos++
		}
		if p.pos >= len(p.b) {
			return nil, malformed("JSON: string not closed")
		}
		p.pos++
		v := &jsonValue{kind: '"', span: span{start, p.pos}}
		if err := json.Unmarshal(p.b[start:p.pos], &v.str); err != nil {
			return nil, malformed("JSON: bad string at offset %d", start)
		}
		return v, nil
	case c == '-' || c >= '0' && c <= '9':
		p.pos++
		for p.pos < len(p.b) && strings.IndexByte("0123456789+-.eE", p.b[p.pos]) >= 0 {
			p.pos++
		}
		lit := string(p.b[start:p.pos])
		if !json.Valid([]byte(lit)) {
			return nil, malformed("JSON: bad number %q", lit)
		}
		return &jsonValue{kind: '0', lit: lit, span: span{start, p.pos}}, nil
	default:
		for _, w := range []string{"true", "false", "null"} {
			if strings.HasPrefix(string(p.b[p.pos:min(len(p.b), p.pos+5)]), w) {
				p.pos += len(w)
				return &jsonValue{kind: w[0], span: span{start, p.pos}}, nil
			}
		}
		return nil, malformed("JSON: unexpected %q at offset %d", c, p.pos)
	}
}

// jacksonToken interprets v as a token of class class. typeKey is the type property Jackson wrote into a
// nested token ("@class" or "@c"), "" at the root.
func jacksonToken(v *jsonValue, class, pkg, typeKey string, depth int) (*Node, error) {
	if depth > maxDepth {
		return nil, malformed("tokens nested deeper than %d", maxDepth)
	}
	kind, err := kindOf(class)
	if err != nil {
		return nil, err
	}
	if v.kind != '{' {
		return nil, malformed("JSON: %s is not an object", class)
	}
	allowed := map[string]bool{}
	if typeKey != "" {
		allowed[typeKey] = true
	}
	switch kind {
	case KindGlobalSequence:
		allowed["globalIndex"] = true
	case KindReplay:
		// Axon writes the context as "context" and reads "resetContext" too (its @JsonCreator parameter).
		allowed["tokenAtReset"], allowed["currentToken"], allowed["context"], allowed["resetContext"] = true, true, true, true
	case KindMerged:
		allowed["lowerSegmentToken"], allowed["upperSegmentToken"] = true, true
	case KindMultiSource:
		allowed["trackingTokens"] = true
	}
	for _, k := range v.keys {
		if !allowed[k] {
			return nil, fmt.Errorf("%w: unknown field %s in %s", ErrUnsupported, k, class)
		}
	}
	// nested reads a token written with its type: "@class" (fully qualified) inside a replay token,
	// "@c" (minimal: relative to the token package) inside merged and multi-source tokens.
	nested := func(f *jsonValue, what string, required bool) (*Node, error) {
		if f == nil || f.kind == 'n' {
			if required {
				return nil, malformed("JSON: %s has no %s", class, what)
			}
			return nil, nil
		}
		if f.kind != '{' {
			return nil, malformed("JSON: %s of %s is not an object", what, class)
		}
		var nestedClass, key string
		if c := f.member("@class"); c != nil && c.kind == '"' {
			nestedClass, key = c.str, "@class"
		} else if c := f.member("@c"); c != nil && c.kind == '"' && strings.HasPrefix(c.str, ".") {
			nestedClass, key = pkg+c.str[1:], "@c"
		} else {
			return nil, fmt.Errorf("%w: %s of %s carries no @class or @c type", ErrUnsupported, what, class)
		}
		return jacksonToken(f, nestedClass, pkg, key, depth+1)
	}
	node := &Node{Kind: kind}
	switch kind {
	case KindGlobalSequence:
		f := v.member("globalIndex")
		if f == nil || f.kind != '0' {
			return nil, malformed("JSON: %s without a numeric globalIndex", class)
		}
		if node.Index, err = parseIndex(f.lit); err != nil {
			return nil, err
		}
		node.span = f.span
	case KindReplay:
		if node.Reset, err = nested(v.member("tokenAtReset"), "tokenAtReset", true); err != nil {
			return nil, err
		}
		if node.Current, err = nested(v.member("currentToken"), "currentToken", false); err != nil {
			return nil, err
		}
	case KindMerged:
		if node.Lower, err = nested(v.member("lowerSegmentToken"), "lowerSegmentToken", true); err != nil {
			return nil, err
		}
		if node.Upper, err = nested(v.member("upperSegmentToken"), "upperSegmentToken", true); err != nil {
			return nil, err
		}
	case KindMultiSource:
		m := v.member("trackingTokens")
		if m == nil || m.kind != '{' {
			return nil, malformed("JSON: %s without a trackingTokens object", class)
		}
		for i, k := range m.keys {
			src := Source{Name: k}
			if src.Token, err = nested(m.values[i], "source "+k, false); err != nil {
				return nil, err
			}
			node.Sources = append(node.Sources, src)
		}
	}
	return node, nil
}
