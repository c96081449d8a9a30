// Package testenv holds fixtures the handler tests share: an in-process
// Pub/Sub (pstest) with the topics a test needs, a Redis key prefix of
// the test's own, deleted when it ends, a redis-server of its own, and a
// log buffer for concurrent writers. Databases come from shared/testdb.
package testenv

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Project is the project of the Pub/Sub that PubSub starts.
const Project = "p"

// PubSub starts pstest for t with topics (unprefixed names) created, and
// returns an admin client and the options that point a client at it.
func PubSub(t testing.TB, topics ...string) (*pubsub.Client, []option.ClientOption) {
	t.Helper()
	srv := pstest.NewServer()
	t.Cleanup(func() { srv.Close() })
	opts := []option.ClientOption{option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
	psc, err := pubsub.NewClient(context.Background(), Project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { psc.Close() })
	for _, topic := range topics {
		if _, err := psc.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: TopicPath(topic)}); err != nil {
			t.Fatal(err)
		}
	}
	return psc, opts
}

// TopicPath is topic's full name in Project.
func TopicPath(topic string) string { return "projects/" + Project + "/topics/" + topic }

// Subscribe creates the pull subscription sub (a full name) on topic.
func Subscribe(t testing.TB, psc *pubsub.Client, sub, topic string) {
	t.Helper()
	if _, err := psc.SubscriptionAdminClient.CreateSubscription(context.Background(),
		&pubsubpb.Subscription{Name: sub, Topic: TopicPath(topic), AckDeadlineSeconds: 60}); err != nil {
		t.Fatal(err)
	}
}

// RedisPrefix returns a client of the local Redis and the key prefix
// id + ":", whose keys are deleted, and the client closed, when t ends.
func RedisPrefix(t testing.TB, id string) (*redis.Client, string) {
	t.Helper()
	testdb.NeedRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: testdb.RedisAddr})
	prefix := id + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Errorf("redis keys %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			if err := rdb.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("redis del: %v", err)
			}
		}
		rdb.Close()
	})
	return rdb, prefix
}

// Pull pulls and acks messages from sub (a full name) until want have
// arrived or 10 s passed, and returns what arrived: the caller checks the
// count.
func Pull(t testing.TB, psc *pubsub.Client, sub string, want int) []*pubsubpb.PubsubMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*pubsubpb.PubsubMessage
	for len(out) < want && ctx.Err() == nil {
		resp, err := psc.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 10})
		if err != nil {
			if ctx.Err() == nil {
				t.Fatalf("pull %s: %v", sub, err)
			}
			break
		}
		for _, m := range resp.ReceivedMessages {
			out = append(out, m.Message)
			if err := psc.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub, AckIds: []string{m.AckId}}); err != nil {
				t.Fatalf("ack %s: %v", sub, err)
			}
		}
	}
	return out
}

// PrivateRedis starts a redis-server of t's own on a free port, without
// persistence, with extra flags (e.g. "--maxmemory", "2mb"): for a test
// that changes server settings or reads server-wide counters, so the
// shared server is never touched. It is killed when t ends.
func PrivateRedis(t testing.TB, flags ...string) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	for range 3 { // a free port can be taken before the server binds it
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, flags...)
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
		for {
			if rdb.Ping(context.Background()).Err() == nil {
				t.Cleanup(func() { rdb.Close(); cmd.Process.Kill(); <-exited })
				return rdb
			}
			select {
			case <-exited:
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
		rdb.Close()
	}
	t.Fatal("redis-server did not start")
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LogBuffer is a log destination for concurrent writers.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
