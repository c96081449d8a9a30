package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"cloud.google.com/go/storage"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// announceTimeout bounds one completion event's publication: the Pub/Sub
// client retries an unreachable server until its context ends, and a
// person at a terminal should hear about it before then.
const announceTimeout = 15 * time.Second

// lazy holds the clients made on first use by Announce and Sign, so that
// commands which neither announce nor sign need no Pub/Sub client nor,
// in production, credentials for one.
type lazy struct {
	mu      sync.Mutex
	bus     *bus.Bus
	storage *storage.Client // for signing when Client.Storage is nil
}

// Announce publishes the completion event of record id, which the caller
// made final, as the functions do (completion.Announcer: the row read
// back, published to report-completed, returned once Pub/Sub confirmed
// it). The Pub/Sub client comes from c.PubSub (GOOGLE_CLOUD_PROJECT,
// PUBSUB_NAME_PREFIX) and PUBSUB_EMULATOR_HOST. The event carries no
// downloadUrl: only a FAILED record is announced from here.
func (c *Client) Announce(ctx context.Context, id int64) error {
	b, err := c.bus(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	a := &completion.Announcer{Records: c.Records, Bus: b}
	log := slog.New(slog.DiscardHandler)
	if err := a.Announce(ctx, id, log); err != nil {
		if ctx.Err() != nil {
			return &Unreachable{Server: PubSub, Where: c.where(PubSub), Err: err}
		}
		return c.Classify(PubSub, err)
	}
	return nil
}

func (c *Client) bus(ctx context.Context) (*bus.Bus, error) {
	c.lazy.mu.Lock()
	defer c.lazy.mu.Unlock()
	if c.lazy.bus != nil {
		return c.lazy.bus, nil
	}
	b, err := bus.New(ctx, c.PubSub.ProjectID, topology.Names{Prefix: c.PubSub.NamePrefix})
	if err != nil {
		return nil, &Unreachable{Server: PubSub, Where: c.where(PubSub), Err: err, Answered: true}
	}
	c.lazy.bus = b
	return b, nil
}

// ErrNoSigning means SIGNED_URL_TTL is not set, so no link can be signed.
var ErrNoSigning = errors.New("SIGNED_URL_TTL is not set: it is the signed link's lifetime (at most 7 days, e.g. SIGNED_URL_TTL=1h); " +
	"with the local stack also set SIGNED_URL_KEY_FILE and SIGNED_URL_ACCESS_ID as `make up` prints them")

// SignedLink is a V4 signed GET URL and when it expires.
type SignedLink struct {
	URL     string
	Expires time.Time
}

// Sign returns a V4 signed GET link to gsPath, made as the functions make
// a SUCCESS event's downloadUrl (completion.Signer with c.Completion):
// valid for SIGNED_URL_TTL, signed locally with SIGNED_URL_KEY_FILE as
// SIGNED_URL_ACCESS_ID and pointing at the emulator, in production with
// the caller's identity through the IAM Credentials API.
func (c *Client) Sign(ctx context.Context, gsPath string) (SignedLink, error) {
	if c.Completion.SignedURLTTL <= 0 {
		return SignedLink{}, ErrNoSigning
	}
	st, err := c.signingStorage(ctx)
	if err != nil {
		return SignedLink{}, err
	}
	s, err := completion.NewSigner(st, c.Completion)
	if err != nil {
		return SignedLink{}, err
	}
	link, err := s.URL(gsPath)
	if err != nil {
		if c.Completion.SignedURLKeyFile == "" {
			// Application Default Credentials of a person cannot sign.
			return SignedLink{}, fmt.Errorf("%w (without SIGNED_URL_KEY_FILE the link is signed through the IAM Credentials API as the account of Application Default Credentials, "+
				"which must be a service account: e.g. `gcloud auth application-default login --impersonate-service-account=...`)", err)
		}
		return SignedLink{}, err
	}
	u, err := url.Parse(link)
	if err != nil {
		return SignedLink{}, fmt.Errorf("signed link %q: %w", link, err)
	}
	date, err := time.Parse("20060102T150405Z", u.Query().Get("X-Goog-Date"))
	if err != nil {
		return SignedLink{}, fmt.Errorf("signed link's X-Goog-Date: %w", err)
	}
	secs, err := strconv.ParseInt(u.Query().Get("X-Goog-Expires"), 10, 64)
	if err != nil {
		return SignedLink{}, fmt.Errorf("signed link's X-Goog-Expires: %w", err)
	}
	return SignedLink{URL: link, Expires: date.Add(time.Duration(secs) * time.Second)}, nil
}

// signingStorage is c.Storage, or a client of the emulator: the signer
// takes the link's host from it (STORAGE_EMULATOR_HOST).
func (c *Client) signingStorage(ctx context.Context) (*storage.Client, error) {
	if c.Storage != nil {
		return c.Storage, nil
	}
	c.lazy.mu.Lock()
	defer c.lazy.mu.Unlock()
	if c.lazy.storage != nil {
		return c.lazy.storage, nil
	}
	if os.Getenv("STORAGE_EMULATOR_HOST") == "" {
		return nil, fmt.Errorf("no Cloud Storage client to sign with: set STORAGE_EMULATOR_HOST (the emulator) or GOOGLE_CLOUD_PROJECT (Cloud Storage)")
	}
	st, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage.NewClient: %w", err)
	}
	c.lazy.storage = st
	return st, nil
}

// closeLazy closes what Announce and Sign made.
func (c *Client) closeLazy() {
	c.lazy.mu.Lock()
	defer c.lazy.mu.Unlock()
	if c.lazy.bus != nil {
		c.lazy.bus.Close()
		c.lazy.bus = nil
	}
	if c.lazy.storage != nil {
		c.lazy.storage.Close()
		c.lazy.storage = nil
	}
}

// pubsubWhere describes where the Pub/Sub client publishes.
func pubsubWhere(cfg config.PubSub) string {
	where := "pubsub.googleapis.com"
	if h := os.Getenv("PUBSUB_EMULATOR_HOST"); h != "" {
		where = "the emulator at " + h + " (PUBSUB_EMULATOR_HOST)"
	}
	return fmt.Sprintf("%s, project %s (GOOGLE_CLOUD_PROJECT), topic %s", where, cfg.ProjectID, topology.Names{Prefix: cfg.NamePrefix}.Topic(topology.TopicCompleted))
}
