package item

import (
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// The expectations below are what memcached 1.6.18 answered (the
// conformance scripts quirks/counter-parse, meta/cas-every, meta/ma-ttl,
// binary/cas-every and meta-stale/* record the same cases on the wire).

func TestParseCounter(t *testing.T) {
	for _, c := range []struct {
		in   string
		v    uint64
		ok   bool
		note string
	}{
		{"7", 7, true, ""},
		{" 7", 7, true, "leading space"},
		{"7 junk", 7, true, "digits end at white space"},
		{"7junk", 0, false, "digits end at a letter"},
		{"-0", 0, true, "minus zero"},
		{"-1", 0, false, "negative"},
		{"+7 ", 7, true, "plus sign"},
		{"7\t", 7, true, "tab"},
		{"", 0, false, "empty"},
		{" ", 0, false, "blank"},
		{"18446744073709551615", 1<<64 - 1, true, "max"},
		{"18446744073709551616", 0, false, "overflow"},
		{"-18446744073709551615", 1, true, "strtoull negation wraps to 1"},
		{"0x10", 0, false, "hex"},
		{"5  ", 5, true, "padding of an earlier decr"},
	} {
		v, ok := ParseCounter([]byte(c.in))
		if v != c.v || ok != c.ok {
			t.Errorf("%q (%s): %d %v, want %d %v", c.in, c.note, v, ok, c.v, c.ok)
		}
	}
}

func TestAppendCounter(t *testing.T) {
	for _, c := range []struct {
		v        uint64
		old, out string
		inPlace  bool
	}{
		{8, " 7", "8 ", true},
		{5, "100", "5  ", true},
		{0, "18446744073709551615", "0                   ", true},
		{100, "99", "100", false},
		{101, "100", "101", true},
		{13, "", "13", false},
	} {
		got := AppendCounter(nil, c.v, []byte(c.old))
		if string(got) != c.out || InPlace(c.v, []byte(c.old)) != c.inPlace {
			t.Errorf("%d over %q: %q in place %v, want %q %v", c.v, c.old, got, InPlace(c.v, []byte(c.old)), c.out, c.inPlace)
		}
	}
	if Delta(1<<64-1, 1, true) != 0 || Delta(3, 10, false) != 0 || Delta(10, 3, false) != 7 {
		t.Error("Delta: incr must wrap, decr stop at 0")
	}
}

const now = 1_700_000_000

func req(cmd protocol.Command, mod func(*protocol.Request)) *protocol.Request {
	r := &protocol.Request{Command: cmd, Keys: [][]byte{[]byte("k")}}
	if mod != nil {
		mod(r)
	}
	return r
}

func TestCASOnEveryCommand(t *testing.T) {
	cur := Item{Value: []byte("5"), CAS: 10}
	for _, cmd := range []protocol.Command{protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace,
		protocol.CmdCas, protocol.CmdAppend, protocol.CmdPrepend, protocol.CmdDelete,
		protocol.CmdIncr, protocol.CmdDecr} {
		wrong := req(cmd, func(r *protocol.Request) { r.CAS, r.Value, r.Delta = 11, []byte("0"), 1 })
		c := cur
		if o := Apply(wrong, &c, now, 100, nil); o.Status != protocol.StatusExists || o.Action != None {
			t.Errorf("%v with a wrong CAS: %v action %v, want exists and no change", cmd, o.Status, o.Action)
		}
		right := req(cmd, func(r *protocol.Request) { r.CAS, r.Value, r.Delta = 10, []byte("0"), 1 })
		if o := Apply(right, &c, now, 100, nil); o.Status != protocol.StatusOK || o.Action == None {
			t.Errorf("%v with the right CAS: %v action %v", cmd, o.Status, o.Action)
		}
		missing := req(cmd, func(r *protocol.Request) { r.CAS, r.Value, r.Delta = 10, []byte("0"), 1 })
		o := Apply(missing, nil, now, 100, nil)
		want := protocol.StatusNotFound
		if cmd == protocol.CmdAppend || cmd == protocol.CmdPrepend {
			want = protocol.StatusNotStored
		}
		if o.Status != want {
			t.Errorf("%v with a CAS on a miss: %v, want %v", cmd, o.Status, want)
		}
	}
}

func TestArith(t *testing.T) {
	cur := Item{Value: []byte("100"), Flags: 3, Exptime: now + 50, CAS: 1, Bits: Stale | Fetched}
	o := Apply(req(protocol.CmdDecr, func(r *protocol.Request) { r.Delta = 95 }), &cur, now, 100, nil)
	if o.Number != 5 || string(o.Next.Value) != "5  " || o.Next.Flags != 3 || o.Next.Exptime != now+50 ||
		!o.NeedCAS || o.Next.Bits != Stale|Fetched {
		t.Fatalf("decr in place: %+v", o)
	}
	o = Apply(req(protocol.CmdIncr, func(r *protocol.Request) { r.Delta = 900 }), &cur, now, 100, nil)
	if o.Number != 1000 || string(o.Next.Value) != "1000" || o.Next.Bits != 0 {
		t.Fatalf("incr to a longer number: %+v", o)
	}
	bad := Item{Value: []byte("abc"), CAS: 1}
	if o := Apply(req(protocol.CmdIncr, nil), &bad, now, 100, nil); o.Status != protocol.StatusNonNumeric {
		t.Fatalf("non-numeric: %v", o.Status)
	}
	// Binary vivify: Initial, request flags and exptime; the delta is not applied.
	viv := req(protocol.CmdIncr, func(r *protocol.Request) { r.Vivify, r.Initial, r.Delta, r.Flags, r.Exptime = true, 42, 7, 9, 100 })
	if o := Apply(viv, nil, now, 100, nil); o.Number != 42 || string(o.Next.Value) != "42" || o.Next.Flags != 9 || o.Next.Exptime != now+100 {
		t.Fatalf("binary vivify: %+v", o)
	}
	// A binary incr's exptime does not touch a hit; ma T does, with t
	// showing the TTL before T when t came first.
	bin := req(protocol.CmdIncr, func(r *protocol.Request) { r.Delta, r.Exptime, r.HasExptime = 1, 5, true })
	if o := Apply(bin, &cur, now, 100, nil); o.Next.Exptime != now+50 {
		t.Fatalf("binary incr changed the TTL: %+v", o.Next)
	}
	ma := req(protocol.CmdIncr, func(r *protocol.Request) {
		r.Delta, r.Exptime, r.HasExptime = 1, 200, true
		r.Mods = protocol.Mods{Meta: true, SetTTL: true, TTLBeforeSet: true}
	})
	if o := Apply(ma, &cur, now, 100, nil); o.Next.Exptime != now+200 || !o.Hit.EarlyTTL || o.Hit.EarlyExptime != now+50 {
		t.Fatalf("ma t T200: %+v", o)
	}
	// ma N J5 t T200: created with flags 0 and N's TTL, which t shows.
	maN := req(protocol.CmdIncr, func(r *protocol.Request) {
		r.Vivify, r.Initial, r.Flags, r.Exptime = true, 5, 9, 200
		r.Mods = protocol.Mods{Meta: true, SetTTL: true, VivifyExptime: 100, TTLBeforeSet: true}
	})
	if o := Apply(maN, nil, now, 100, nil); o.Next.Exptime != now+200 || o.Hit.EarlyExptime != now+100 || o.Next.Flags != 0 {
		t.Fatalf("ma N100 t T200: %+v", o)
	}
}

func TestStore(t *testing.T) {
	cur := Item{Value: []byte("abc"), Flags: 1, Exptime: now + 10, CAS: 5, Bits: Stale | WinSent}
	for _, c := range []struct {
		name   string
		r      *protocol.Request
		cur    *Item
		status protocol.Status
		action Action
		value  string
	}{
		{"set", req(protocol.CmdSet, func(r *protocol.Request) { r.Value = []byte("x") }), &cur, protocol.StatusOK, Put, "x"},
		{"set born expired", req(protocol.CmdSet, func(r *protocol.Request) { r.Exptime = -1 }), &cur, protocol.StatusOK, Delete, ""},
		{"set too large", req(protocol.CmdSet, func(r *protocol.Request) { r.Value = make([]byte, 11) }), &cur, protocol.StatusTooLarge, Delete, ""},
		{"add present (bumps it)", req(protocol.CmdAdd, nil), &cur, protocol.StatusNotStored, Put, "abc"},
		{"replace missing", req(protocol.CmdReplace, nil), nil, protocol.StatusNotStored, None, ""},
		{"append", req(protocol.CmdAppend, func(r *protocol.Request) { r.Value = []byte("d") }), &cur, protocol.StatusOK, Put, "abcd"},
		{"prepend", req(protocol.CmdPrepend, func(r *protocol.Request) { r.Value = []byte("z") }), &cur, protocol.StatusOK, Put, "zabc"},
		{"append too large", req(protocol.CmdAppend, func(r *protocol.Request) { r.Value = make([]byte, 8) }), &cur, protocol.StatusNotStored, None, ""},
		{"binary add with a CAS is a cas", req(protocol.CmdAdd, func(r *protocol.Request) { r.CAS = 5; r.Value = []byte("y") }), &cur, protocol.StatusOK, Put, "y"},
	} {
		o := Apply(c.r, c.cur, now, 10, nil)
		if o.Status != c.status || o.Action != c.action || (c.value != "" && string(o.Next.Value) != c.value) {
			t.Errorf("%s: %v %v %q, want %v %v %q", c.name, o.Status, o.Action, o.Next.Value, c.status, c.action, c.value)
		}
		if o.Action == Put && !o.StateOnly && o.Next.Bits != 0 {
			t.Errorf("%s: a new value keeps state bits %v", c.name, o.Next.Bits)
		}
	}
	// ms I with an older CAS: stale, keeps TTL and token; a newer one: EXISTS.
	msI := req(protocol.CmdCas, func(r *protocol.Request) { r.CAS, r.Invalidate, r.Value, r.Exptime = 4, true, []byte("v2"), 0 })
	if o := Apply(msI, &cur, now, 10, nil); o.Status != protocol.StatusOK || o.Next.Bits != Stale|WinSent || o.Next.Exptime != now+10 {
		t.Fatalf("ms I older CAS: %+v", o)
	}
	msI.CAS = 6
	if o := Apply(msI, &cur, now, 10, nil); o.Status != protocol.StatusExists {
		t.Fatalf("ms I newer CAS: %v", o.Status)
	}
	// An expired current item is a miss.
	old := Item{Value: []byte("a"), Exptime: now}
	if o := Apply(req(protocol.CmdAppend, nil), &old, now, 10, nil); o.Status != protocol.StatusNotStored {
		t.Fatalf("append to an expired item: %v", o.Status)
	}
}

func TestDeleteAndTouch(t *testing.T) {
	cur := Item{Value: []byte("v"), Exptime: now + 100, CAS: 5, Bits: WinSent}
	mdI := req(protocol.CmdDelete, func(r *protocol.Request) { r.Invalidate, r.Exptime, r.HasExptime = true, 30, true })
	o := Apply(mdI, &cur, now, 10, nil)
	if o.Action != Put || !o.NeedCAS || o.Next.Bits != Stale || o.Next.Exptime != now+30 || string(o.Next.Value) != "v" {
		t.Fatalf("md I T30: %+v", o)
	}
	if o := Apply(req(protocol.CmdDelete, nil), &cur, now, 10, nil); o.Action != Delete {
		t.Fatalf("delete: %+v", o)
	}
	o = Apply(req(protocol.CmdTouch, func(r *protocol.Request) { r.Exptime = 50 }), &cur, now, 10, nil)
	if o.Action != Put || o.NeedCAS || o.Next.Exptime != now+50 || o.Next.Bits&Fetched == 0 {
		t.Fatalf("touch: %+v", o)
	}
	if o := Apply(req(protocol.CmdTouch, func(r *protocol.Request) { r.Exptime = -1 }), &cur, now, 10, nil); o.Action != Delete {
		t.Fatalf("touch into the past: %+v", o)
	}
}

func TestReadMeta(t *testing.T) {
	mg := func(mod func(*protocol.Request)) *protocol.Request {
		return req(protocol.CmdGet, func(r *protocol.Request) {
			r.Mods.Meta = true
			if mod != nil {
				mod(r)
			}
		})
	}
	// mg N on a miss: created, W; a second mg: Z, h1.
	vivify := mg(func(r *protocol.Request) { r.Vivify, r.Mods.VivifyExptime = true, 30 })
	o := Read(vivify, nil, now)
	if !o.Hit.Win || o.Hit.Won || !o.NeedCAS || o.Action != Put || o.Next.Exptime != now+30 || o.Hit.Fetched {
		t.Fatalf("mg N miss: %+v", o)
	}
	o.SetCAS(7)
	it := o.Next
	o = Read(vivify, &it, now)
	if o.Hit.Win || !o.Hit.Won || !o.Hit.Fetched || o.NeedCAS {
		t.Fatalf("second mg N: %+v", o.Hit)
	}
	// Stale: X W, then Z X; a classic get sees neither and hands out nothing.
	stale := Item{Value: []byte("v"), CAS: 3, Bits: Stale}
	if o := Read(req(protocol.CmdGet, nil), &stale, now); o.Hit.Win || o.Hit.Stale || o.Next.Bits&WinSent != 0 {
		t.Fatalf("classic get of a stale item: %+v", o)
	}
	o = Read(mg(nil), &stale, now)
	if !o.Hit.Win || !o.Hit.Stale || o.Hit.Won || o.Action != Put || !o.StateOnly {
		t.Fatalf("first mg of a stale item: %+v", o)
	}
	it = o.Next
	if o := Read(mg(nil), &it, now); o.Hit.Win || !o.Hit.Won || !o.Hit.Stale {
		t.Fatalf("second mg of a stale item: %+v", o.Hit)
	}
	// R: win below the threshold, once; not above it, not without a TTL.
	ttl := Item{Value: []byte("v"), Exptime: now + 100}
	r200 := mg(func(r *protocol.Request) { r.Mods.Recache, r.Mods.HasRecache = 200, true })
	o = Read(r200, &ttl, now)
	if !o.Hit.Win {
		t.Fatal("mg R200 with 100 s left must win")
	}
	it = o.Next
	if o := Read(r200, &it, now); o.Hit.Win || !o.Hit.Won {
		t.Fatal("second mg R200 must see Z")
	}
	r50 := mg(func(r *protocol.Request) { r.Mods.Recache, r.Mods.HasRecache = 50, true })
	if o := Read(r50, &ttl, now); o.Hit.Win {
		t.Fatal("mg R50 with 100 s left must not win")
	}
	// t before T shows the old TTL; the item gets the new one.
	tT := mg(func(r *protocol.Request) {
		r.Command, r.Exptime, r.HasExptime = protocol.CmdGat, 200, true
		r.Mods.SetTTL, r.Mods.TTLBeforeSet = true, true
	})
	if o := Read(tT, &ttl, now); o.Next.Exptime != now+200 || !o.Hit.EarlyTTL || o.Hit.EarlyExptime != now+100 || o.StateOnly {
		t.Fatalf("mg t T200: %+v", o)
	}
	// Access time: the first fetch sets Fetched, the next moves Access.
	fresh := Item{Value: []byte("v"), Access: now - 5}
	o = Read(req(protocol.CmdGet, nil), &fresh, now)
	if o.Hit.Fetched || o.Hit.Accessed != now-5 || o.Next.Access != now-5 || o.Next.Bits != Fetched {
		t.Fatalf("first fetch: %+v", o)
	}
	it = o.Next
	if o := Read(req(protocol.CmdGet, nil), &it, now); !o.Hit.Fetched || o.Next.Access != now {
		t.Fatalf("second fetch: %+v", o)
	}
}

func TestNoAllocs(t *testing.T) {
	cur := Item{Value: []byte("12345"), CAS: 1, Exptime: now + 10}
	incr := req(protocol.CmdIncr, func(r *protocol.Request) { r.Delta = 1 })
	app := req(protocol.CmdAppend, func(r *protocol.Request) { r.Value = []byte("xy") })
	get := req(protocol.CmdGet, func(r *protocol.Request) { r.Mods.Meta = true })
	dst := make([]byte, 0, 64)
	n := testing.AllocsPerRun(100, func() {
		_ = Apply(incr, &cur, now, 100, dst)
		_ = Apply(app, &cur, now, 100, dst)
		_ = Read(get, &cur, now)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
}

// A classic read sent as mg (ClassicRead, mnemonic's G) of a stale item
// shows X but takes no W, so the next mg still wins, as after memcached's
// classic get.
func TestClassicReadTakesNoToken(t *testing.T) {
	cur := Item{Value: []byte("v"), CAS: 1, Bits: Stale}
	classic := req(protocol.CmdGet, func(r *protocol.Request) { r.Mods.Meta, r.Mods.ClassicRead = true, true })
	o := Read(classic, &cur, now)
	if o.Hit.Win || !o.Hit.Stale || o.Next.Bits&WinSent != 0 {
		t.Fatalf("classic read: %+v", o.Hit)
	}
	next := o.Next
	o = Read(req(protocol.CmdGet, func(r *protocol.Request) { r.Mods.Meta = true }), &next, now)
	if !o.Hit.Win || !o.Hit.Stale || o.Next.Bits&WinSent == 0 {
		t.Fatalf("mg after it: %+v", o.Hit)
	}
}

// What moves h and l, as memcached 1.6.18 answered (conformance meta/
// fetch-access and ttl/last-access record the same on the wire): a fetch
// sets Fetched, a later fetch moves Access; touch is a fetch; incr in place
// and a failed add move Access without a fetch; md I and mg u move nothing.
func TestFetchAndAccess(t *testing.T) {
	cur := Item{Value: []byte("1"), CAS: 1, Access: now - 100}
	get := req(protocol.CmdGet, nil)
	o := Read(get, &cur, now)
	if o.Next.Bits != Fetched || o.Next.Access != now-100 || !o.StateOnly {
		t.Fatalf("first fetch: %+v", o.Next)
	}
	f := o.Next
	if o = Read(get, &f, now); o.Next.Access != now || o.Hit.Accessed != now-100 || !o.Hit.Fetched {
		t.Fatalf("second fetch: %+v %+v", o.Next, o.Hit)
	}
	if o = Apply(req(protocol.CmdTouch, nil), &cur, now, 10, nil); o.Next.Bits != Fetched || o.Next.Access != now-100 {
		t.Fatalf("touch: %+v", o.Next)
	}
	if o = Apply(req(protocol.CmdIncr, func(r *protocol.Request) { r.Delta = 1 }), &cur, now, 10, nil); o.Next.Bits != 0 || o.Next.Access != now {
		t.Fatalf("incr in place: %+v", o.Next)
	}
	if o = Apply(req(protocol.CmdAdd, nil), &f, now, 10, nil); o.Status != protocol.StatusNotStored || o.Next.Bits != Fetched || o.Next.Access != now {
		t.Fatalf("failed add: %+v", o)
	}
	if o = Apply(req(protocol.CmdDelete, func(r *protocol.Request) { r.Invalidate = true }), &f, now, 10, nil); o.Next.Bits != Fetched|Stale || o.Next.Access != now-100 {
		t.Fatalf("md I: %+v", o.Next)
	}
	noBump := req(protocol.CmdGet, func(r *protocol.Request) { r.Mods.Meta, r.Mods.NoBump = true, true })
	if o = Read(noBump, &cur, now); o.Action != None {
		t.Fatalf("mg u: %+v", o)
	}
	// Persist: a flipped bit always, a moved access only by the step.
	o = Read(get, &f, now)
	if !Persist(&o, &f, UpdateInterval) || Persist(&o, &f, 101) {
		t.Fatal("Persist: a 100 s access move must be written at a 60 s step, not at a 101 s one")
	}
	first := Read(get, &cur, now)
	if !Persist(&first, &cur, UpdateInterval) {
		t.Fatal("Persist: the first fetch flips a bit and must be written")
	}
}

// mnemonic's A (PeerAccess): fetches only rend's L1 copy saw are counted
// before the read, so h and l show them and the record keeps them; an
// older time than the item's own moves nothing back.
func TestPeerAccess(t *testing.T) {
	cur := Item{Value: []byte("v"), CAS: 1, Access: now - 100}
	sync := req(protocol.CmdGet, func(r *protocol.Request) {
		r.Mods.Meta, r.Mods.NoBump, r.Mods.ClassicRead, r.Mods.PeerAccess = true, true, true, now-10
	})
	o := Read(sync, &cur, now)
	if !o.Hit.Fetched || o.Hit.Accessed != now-10 || o.Next.Bits != Fetched || o.Next.Access != now-10 ||
		o.Action != Put || !o.StateOnly {
		t.Fatalf("A newer than the record: %+v %+v", o.Hit, o.Next)
	}
	cur = Item{Value: []byte("v"), CAS: 1, Bits: Fetched, Access: now - 5}
	o = Read(sync, &cur, now)
	if o.Next.Access != now-5 || o.Action != None {
		t.Fatalf("A older than the record: %+v action %v", o.Next, o.Action)
	}
}

// An incr carrying A (fetches only rend's L1 copy saw) keeps the fetched
// bit in place, as memcached's incr of an item fetched before does.
func TestPeerAccessIncr(t *testing.T) {
	cur := Item{Value: []byte("1"), CAS: 1, Access: now - 100}
	incr := req(protocol.CmdIncr, func(r *protocol.Request) { r.Delta, r.Mods.PeerAccess = 1, now-10 })
	o := Apply(incr, &cur, now, 100, make([]byte, 0, 32))
	if o.Status != protocol.StatusOK || o.Next.Bits != Fetched || o.Next.Access != now {
		t.Fatalf("incr with A: %v %+v", o.Status, o.Next)
	}
	incr.Mods.PeerAccess = 0
	o = Apply(incr, &cur, now, 100, make([]byte, 0, 32))
	if o.Next.Bits != 0 {
		t.Fatalf("incr without A: %+v", o.Next)
	}
}
