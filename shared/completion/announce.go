package completion

import (
	"context"
	"fmt"
	"log/slog"

	"cloud.google.com/go/storage"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Announcer publishes the completion events of one function.
type Announcer struct {
	Records *record.Repo
	Bus     *bus.Bus
	// Signer adds downloadUrl to SUCCESS events; nil adds none.
	Signer *Signer
}

// NewAnnouncer returns the announcer cfg asks for. storage may be nil
// unless SIGNED_URL_TTL is set.
func NewAnnouncer(records *record.Repo, b *bus.Bus, st *storage.Client, cfg config.Completion) (*Announcer, error) {
	s, err := NewSigner(st, cfg)
	if err != nil {
		return nil, err
	}
	return &Announcer{Records: records, Bus: b, Signer: s}, nil
}

// Announce reads record id as it is now and publishes its event, returning
// once Pub/Sub has confirmed it: the caller acks the message that made
// (or found) the record final only after that. A record in a status this
// code does not know is logged and not announced; one not final is an
// error (a caller only announces records it saw final).
func (a *Announcer) Announce(ctx context.Context, id int64, log *slog.Logger) error {
	rec, err := a.Records.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("announce record %d: %w", id, err)
	}
	if !rec.Status.Known() {
		log.Warn("record in a status this deployment does not know; no completion event", "status", int8(rec.Status))
		return nil
	}
	ev, err := FromRecord(rec)
	if err != nil {
		return err
	}
	return a.Publish(ctx, ev, log)
}

// Ended announces a record the caller has just made final, and logs the
// one "report final" line per record (status, reportType,
// durationSeconds) that the module's outcome and duration metrics count.
// A record found final again later is announced with Announce, which
// logs no such line, so re-announcements are not counted twice.
func (a *Announcer) Ended(ctx context.Context, id int64, log *slog.Logger) error {
	rec, err := a.Records.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("announce record %d: %w", id, err)
	}
	log.Info("report final", "status", rec.Status.String(), "reportType", rec.ReportType,
		"durationSeconds", rec.UpdatedAt.Sub(rec.CreatedAt).Seconds())
	ev, err := FromRecord(rec)
	if err != nil {
		return err
	}
	return a.Publish(ctx, ev, log)
}

// Publish signs ev's link if configured and publishes ev. A link that
// cannot be signed fails the announcement, so it is retried: with signing
// configured, every SUCCESS event carries a link.
func (a *Announcer) Publish(ctx context.Context, ev Event, log *slog.Logger) error {
	if a.Signer != nil && ev.Status == record.Success {
		u, err := a.Signer.URL(ev.FilePath)
		if err != nil {
			return fmt.Errorf("announce record %d: %w", ev.RecordID, err)
		}
		ev.DownloadURL = u
	}
	body, err := ev.MarshalJSON()
	if err != nil {
		return err
	}
	msgID, err := a.Bus.Publish(ctx, topology.TopicCompleted, body, ev.Attributes())
	if err != nil {
		return fmt.Errorf("announce record %d: %w", ev.RecordID, err)
	}
	log.Info("completion event published", "status", ev.Status.String(), "messageId", msgID, "withLink", ev.DownloadURL != "")
	return nil
}
