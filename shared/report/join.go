package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
)

// stage1Pairs holds the distinct (user_id, currency) pairs of stage 1's
// joined rows, in order: the input of the vs_payment listener.
const stage1Pairs = "aggregate.stage1.user_id"

// keyReader walks a dataset ordered by an integer key in its first column
// and checks that order, since every merge below depends on it.
type keyReader struct {
	r    *dataset.Reader
	name string
	row  []string
	key  int64
	prev int64
	n    int64
	eof  bool
}

func openKeyed(ctx context.Context, st dataset.Store, name string, width int) (*keyReader, error) {
	r, err := dataset.Open(ctx, st, name, width)
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", name, err)
	}
	k := &keyReader{r: r, name: name}
	return k, k.advance()
}

func (k *keyReader) advance() error {
	row, err := k.r.Next()
	if errors.Is(err, io.EOF) {
		k.eof, k.row = true, nil
		return nil
	}
	if err != nil {
		return err
	}
	key, err := strconv.ParseInt(row[0], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s row %d: key %q is not an integer", dataset.ErrCorrupt, k.name, k.n, row[0])
	}
	if k.n > 0 && key < k.prev {
		return fmt.Errorf("%w: %s row %d: key %d after %d, not in key order", dataset.ErrCorrupt, k.name, k.n, key, k.prev)
	}
	k.row, k.key, k.prev = row, key, key
	k.n++
	return nil
}

// tagLookup answers "which requested tags has user u" for ascending u.
type tagLookup struct {
	k    *keyReader
	user int64
	tags string
	ok   bool
	buf  strings.Builder
}

func (t *tagLookup) get(user int64) (string, bool, error) {
	if t.ok && t.user == user {
		return t.tags, true, nil
	}
	for !t.k.eof && t.k.key < user {
		if err := t.k.advance(); err != nil {
			return "", false, err
		}
	}
	if t.k.eof || t.k.key > user {
		return "", false, nil
	}
	// Rows come as (user, tag) ordered by tag number and distinct.
	t.buf.Reset()
	for !t.k.eof && t.k.key == user {
		if t.buf.Len() > 0 {
			t.buf.WriteByte(';')
		}
		t.buf.WriteString(t.k.row[1])
		if err := t.k.advance(); err != nil {
			return "", false, err
		}
	}
	t.user, t.tags, t.ok = user, t.buf.String(), true
	return t.tags, true, nil
}

// withdrawRow is one joined stage-1 row; out is reused between calls.
type withdrawRow struct {
	user     int64
	currency string
	out      []string // withdraw_id,user_id,tag_ids,amount,currency,status,created_at
}

// joinWithdrawals merge-joins the tag relation and the withdrawals by user,
// both in user order, yielding withdrawals of tagged users in
// (user_id, withdraw_id) order.
func joinWithdrawals(ctx context.Context, st dataset.Store, yield func(withdrawRow) error) error {
	tags, err := openKeyed(ctx, st, userTagRelation.Dataset(), len(userTagRelation.Columns))
	if err != nil {
		return err
	}
	wd, err := openKeyed(ctx, st, withdraw.Dataset(), len(withdraw.Columns))
	if err != nil {
		return err
	}
	lookup := &tagLookup{k: tags}
	w := withdrawRow{out: make([]string, 7)}
	for !wd.eof {
		t, ok, err := lookup.get(wd.key)
		if err != nil {
			return err
		}
		if ok {
			// wd.row: user_id, id, amount, currency, status, created_at
			r := wd.row
			w.user, w.currency = wd.key, r[3]
			w.out[0], w.out[1], w.out[2], w.out[3], w.out[4], w.out[5], w.out[6] = r[1], r[0], t, r[2], r[3], r[4], r[5]
			if err := yield(w); err != nil {
				return err
			}
		}
		if err := wd.advance(); err != nil {
			return err
		}
	}
	return nil
}

// writeStage1Pairs writes the distinct (user, currency) pairs of the
// stage-1 join for the vs_payment listener.
func writeStage1Pairs(ctx context.Context, n int, st dataset.WriteStore, chunkBytes int) (bool, error) {
	if n != 1 {
		return false, fmt.Errorf("withdraw_by_tag_with_payments has no stage %d to prepare", n+1)
	}
	w := dataset.NewWriter(ctx, st, stage1Pairs, chunkBytes)
	var user int64
	var userSet bool
	var currencies []string
	flush := func() error {
		slices.Sort(currencies)
		for _, c := range slices.Compact(currencies) {
			if err := w.Write([]string{strconv.FormatInt(user, 10), c}); err != nil {
				return err
			}
		}
		currencies = currencies[:0]
		return nil
	}
	err := joinWithdrawals(ctx, st, func(r withdrawRow) error {
		if userSet && r.user != user {
			if err := flush(); err != nil {
				return err
			}
		}
		user, userSet = r.user, true
		if !slices.Contains(currencies, r.currency) {
			currencies = append(currencies, r.currency)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if err := flush(); err != nil {
		return false, err
	}
	chunks, rows, err := w.Close()
	if err != nil {
		return false, err
	}
	if err := st.Finish(ctx, stage1Pairs, chunks, rows); err != nil {
		return false, err
	}
	return rows > 0, nil
}

// joinWithPayments adds each withdrawal's user's payment count and total
// in that withdrawal's currency, from the stage-2 rows (one per pair).
func joinWithPayments(ctx context.Context, st dataset.Store, emit func([]string) error) error {
	var pay *keyReader
	out := make([]string, 9)
	var user int64
	var userSet bool
	sums := map[string][2]string{} // the current user's currency -> count, total
	return joinWithdrawals(ctx, st, func(r withdrawRow) error {
		if pay == nil {
			var err error
			if pay, err = openKeyed(ctx, st, payment.Dataset(), len(payment.Columns)); err != nil {
				return err
			}
		}
		if !userSet || r.user != user {
			clear(sums)
			for !pay.eof && pay.key < r.user {
				if err := pay.advance(); err != nil {
					return err
				}
			}
			for !pay.eof && pay.key == r.user {
				sums[pay.row[1]] = [2]string{pay.row[2], pay.row[3]}
				if err := pay.advance(); err != nil {
					return err
				}
			}
			user, userSet = r.user, true
		}
		s, ok := sums[r.currency]
		if !ok {
			return fmt.Errorf("%w: stage 2 (%s) has no row for user %d currency %q", dataset.ErrCorrupt, payment.Name(), r.user, r.currency)
		}
		copy(out, r.out)
		out[7], out[8] = s[0], s[1]
		return emit(out)
	})
}
