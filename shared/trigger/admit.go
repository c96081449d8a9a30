package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/record"
)

// ErrThrottled marks a trigger whose report must wait for capacity: the
// consumer moves it to the throttle queue, from which it comes back after
// THROTTLE_DELAY. Waiting is not a failed attempt: it never counts against
// MAX_ATTEMPTS and never ends the record FAILED.
var ErrThrottled = errors.New("report waits for capacity")

// Limits are the checks a PENDING report passes before it moves to
// PROCESSING. A trigger for a record already PROCESSING (a redelivery, a
// retry) passes no check and takes no slot: it holds one already.
type Limits struct {
	// MaxInFlight bounds the records PROCESSING at once; 0 means no bound.
	MaxInFlight int
	// Memory, if set, holds new reports back while Redis is above its
	// high-water mark.
	Memory *RedisMemory
}

// RedisMemory reads Redis's memory use from INFO memory: Memorystore
// refuses CONFIG GET, and INFO is what it documents for monitoring.
type RedisMemory struct {
	Client redis.Cmdable
	// HighWater is the fraction of maxmemory above which new reports wait.
	HighWater float64
}

// Above reports whether used_memory is above HighWater × maxmemory, with
// both numbers. With maxmemory 0 (no limit) it is never above.
func (m *RedisMemory) Above(ctx context.Context) (above bool, used, maxmemory int64, err error) {
	info, err := m.Client.Info(ctx, "memory").Result()
	if err != nil {
		return false, 0, 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	used, maxmemory, err = parseInfoMemory(info)
	if err != nil {
		return false, 0, 0, err
	}
	return maxmemory > 0 && float64(used) > m.HighWater*float64(maxmemory), used, maxmemory, nil
}

// parseInfoMemory reads used_memory and maxmemory from INFO's
// "field:value" lines.
func parseInfoMemory(info string) (used, maxmemory int64, err error) {
	found := 0
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_memory" && k != "maxmemory") {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("redis INFO memory: %s: %w", k, err)
		}
		if k == "used_memory" {
			used = n
		} else {
			maxmemory = n
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("redis INFO memory: want used_memory and maxmemory in %q", info)
	}
	return used, maxmemory, nil
}

// admit moves PENDING record id to PROCESSING if the limits allow; it
// reports false if the record was not PENDING any more, and an error
// wrapping ErrThrottled if the report must wait. behind says the trigger
// arrived while older ones wait in the throttle queue (see
// Consumer.handle).
func (d *Dispatcher) admit(ctx context.Context, id int64, behind bool, log *slog.Logger) (bool, error) {
	if behind && d.Limits.MaxInFlight > 0 {
		// Triggers refused a moment ago are still waiting: queue behind
		// them rather than take the first slot they freed, so reports
		// start roughly in the order they were requested.
		return false, fmt.Errorf("%w: older triggers are waiting for a slot", ErrThrottled)
	}
	if m := d.Limits.Memory; m != nil {
		above, used, maxmemory, err := m.Above(ctx)
		if err != nil {
			return false, err
		}
		if above {
			return false, fmt.Errorf("%w: Redis used_memory %d is above %v of maxmemory %d (REDIS_MEMORY_HIGH_WATER)", ErrThrottled, used, m.HighWater, maxmemory)
		}
	}
	if d.Limits.MaxInFlight <= 0 {
		return d.Records.MarkProcessing(ctx, id)
	}
	a, err := d.Records.Admit(ctx, id, d.Limits.MaxInFlight)
	if err != nil {
		return false, err
	}
	switch a {
	case record.Full:
		return false, fmt.Errorf("%w: %d reports PROCESSING (MAX_IN_FLIGHT)", ErrThrottled, d.Limits.MaxInFlight)
	case record.Admitted:
		log.Debug("report admitted", "maxInFlight", d.Limits.MaxInFlight)
		return true, nil
	}
	return false, nil
}
