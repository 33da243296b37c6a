package mctest

import "testing"

func TestStart(t *testing.T) {
	m := Start(t)
	t.Log(m.Addr)
	m.Restart()
	n := StartTCP(t)
	t.Log(n.Addr)
}
