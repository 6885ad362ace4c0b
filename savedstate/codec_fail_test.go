package savedstate

import (
	"errors"
	"testing"
)

// TestDecoderFailKeepsTheCause: a rule broken because of another error,
// recorded with %w, matches both ErrInvalid and that error; the text is
// as it was with the cause formatted in.
func TestDecoderFailKeepsTheCause(t *testing.T) {
	cause := errors.New("unknown message type")
	d := NewDecoder(nil)
	d.Fail("field %d: %w", 3, cause)
	d.Fail("a later rule %d", 4) // the first one stays
	err := d.Err()
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, cause) {
		t.Fatalf("%v: Is(ErrInvalid) %v, Is(cause) %v", err, errors.Is(err, ErrInvalid), errors.Is(err, cause))
	}
	if want := "invalid saved state: field 3: unknown message type"; err.Error() != want {
		t.Errorf("text %q, want %q", err.Error(), want)
	}
}
