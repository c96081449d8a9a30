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
// and checks that order, since every merge below depends on it. Its row is
// bytes, valid until the next advance; strings makes them strings, for the
// rows a join keeps.
type keyReader struct {
	r      *dataset.Reader
	name   string
	fields [][]byte
	row    []string
	key    int64
	prev   int64
	n      int64
	eof    bool
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
	fields, err := k.r.NextBytes()
	if errors.Is(err, io.EOF) {
		k.eof, k.fields = true, nil
		return nil
	}
	if err != nil {
		return err
	}
	key, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s row %d: key %q is not an integer", dataset.ErrCorrupt, k.name, k.n, fields[0])
	}
	if k.n > 0 && key < k.prev {
		return fmt.Errorf("%w: %s row %d: key %d after %d, not in key order", dataset.ErrCorrupt, k.name, k.n, key, k.prev)
	}
	k.fields, k.key, k.prev = fields, key, key
	k.n++
	return nil
}

// strings is the current row as strings (one allocation), reused by the
// next call.
func (k *keyReader) strings() []string {
	k.row = dataset.Strings(k.row[:0], k.fields)
	return k.row
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
		t.buf.Write(t.k.fields[1])
		if err := t.k.advance(); err != nil {
			return "", false, err
		}
	}
	t.user, t.tags, t.ok = user, t.buf.String(), true
	return t.tags, true, nil
}

// joinTagged merge-joins the tag relation with src's dataset by user, both
// in user order: it yields every row of src whose user holds a requested
// tag, in src's order, with its user and that user's matching tags
// ("3;10"). row is src's row (src.Columns), valid only during the call.
func joinTagged(ctx context.Context, st dataset.Store, src Source, yield func(user int64, tags string, row []string) error) error {
	tags, err := openKeyed(ctx, st, userTagRelation.Dataset(), len(userTagRelation.Columns))
	if err != nil {
		return err
	}
	rows, err := openKeyed(ctx, st, src.Dataset(), len(src.Columns))
	if err != nil {
		return err
	}
	lookup := &tagLookup{k: tags}
	for !rows.eof {
		t, ok, err := lookup.get(rows.key)
		if err != nil {
			return err
		}
		if ok {
			if err := yield(rows.key, t, rows.strings()); err != nil {
				return err
			}
		}
		if err := rows.advance(); err != nil {
			return err
		}
	}
	return nil
}

// TagIDs names the tag_ids cell in TaggedRows's columns: the user's
// matching tags.
const TagIDs = "tag_ids"

// TaggedRows is the Join of a report whose rows are src's rows of users
// holding any requested tag (src and the tag relation in stage 1): one CSV
// row per src row, in src's order, its cells src's columns named by cols
// (TagIDs for the user's matching tags).
func TaggedRows(src Source, cols ...string) func(ctx context.Context, st dataset.Store, emit func([]string) error) error {
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = -1
		if c == TagIDs {
			continue
		}
		j := slices.IndexFunc(src.Columns, func(sc Column) bool { return sc.Name == c })
		if j < 0 {
			panic(fmt.Sprintf("report: TaggedRows: %s has no column %s", src.Name(), c))
		}
		idx[i] = j
	}
	return func(ctx context.Context, st dataset.Store, emit func([]string) error) error {
		out := make([]string, len(idx))
		return joinTagged(ctx, st, src, func(_ int64, tags string, row []string) error {
			for i, j := range idx {
				if j < 0 {
					out[i] = tags
				} else {
					out[i] = row[j]
				}
			}
			return emit(out)
		})
	}
}

// withdrawRow is one joined stage-1 row; out is reused between calls.
type withdrawRow struct {
	user     int64
	currency string
	out      []string // withdraw_id,user_id,tag_ids,amount,currency,status,created_at
}

// joinWithdrawals yields the withdrawals of tagged users in
// (user_id, withdraw_id) order.
func joinWithdrawals(ctx context.Context, st dataset.Store, yield func(withdrawRow) error) error {
	w := withdrawRow{out: make([]string, 7)}
	return joinTagged(ctx, st, withdraw, func(user int64, t string, r []string) error {
		// r: user_id, id, amount, currency, status, created_at
		w.user, w.currency = user, r[3]
		w.out[0], w.out[1], w.out[2], w.out[3], w.out[4], w.out[5], w.out[6] = r[1], r[0], t, r[2], r[3], r[4], r[5]
		return yield(w)
	})
}

// writeStage1Pairs writes the distinct (user, currency) pairs of the
// stage-1 join for the vs_payment listener.
func writeStage1Pairs(ctx context.Context, n int, st dataset.WriteStore, chunkBytes int, codec dataset.Codec) (bool, error) {
	if n != 1 {
		return false, fmt.Errorf("withdraw_by_tag_with_payments has no stage %d to prepare", n+1)
	}
	w := dataset.NewWriter(ctx, st, stage1Pairs, chunkBytes)
	w.SetCodec(codec)
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
				row := pay.strings()
				sums[row[1]] = [2]string{row[2], row[3]}
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
