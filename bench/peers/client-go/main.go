// Command peer-client-go is the client-go side of kubefan's benchmarks.
//
//	peer-client-go fanout --kubeconfig P [--subscribers N] [--events M]
//	    [--objects K] [--timeout S]
//	  One shared informer on the ConfigMaps of namespace "bench" with N
//	  event handlers, fed by bench/fanout's stream server. Each object
//	  carries annotations bench.kubefan.io/seq (event number, -1 for the
//	  listed state) and bench.kubefan.io/sent-ns (CLOCK_REALTIME ns when the
//	  server produced it). A handler is done when it has seen event M-1.
//	  Prints `RESULT {json}` with events/s and p50/p99 latency.
//
//	peer-client-go informers --kubeconfig P --count N --namespace NS
//	    [--duration S]
//	  N independent informers (each its own clientset, transport and
//	  watch) on the ConfigMaps of NS against a real API server, as N
//	  separate controllers would run. Prints "SYNCED N" once all have
//	  synced, runs until SIGTERM/SIGINT or the duration, then prints
//	  `RESULT {json}` with the events each informer received.
//
//	peer-client-go churn --kubeconfig P --namespace NS [--objects K]
//	    [--updates U]
//	  Creates the namespace when missing, K ConfigMaps in it, then U
//	  updates spread over them, one request at a time. Prints `RESULT`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "peer-client-go: "+format+"\n", args...)
	os.Exit(1)
}

func restConfig(path string) *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		fail("kubeconfig %s: %v", path, err)
	}
	cfg.QPS = 1000
	cfg.Burst = 2000
	return cfg
}

func result(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Printf("RESULT %s\n", b)
}

// ---- fanout ----

type seen struct {
	events      int64 // watch events (seq >= 0) handled
	firstSentNs int64
	lastRecvNs  int64
	latencies   []int64
	done        chan struct{}
	want        int64
}

func annotationInt(cm *corev1.ConfigMap, key string) int64 {
	v, ok := cm.Annotations[key]
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// observe runs on the handler's own goroutine (client-go calls each
// handler from one goroutine), so seen needs no lock.
func (s *seen) observe(obj any) {
	recv := time.Now().UnixNano()
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	seq := annotationInt(cm, "bench.kubefan.io/seq")
	if seq < 0 {
		return
	}
	sent := annotationInt(cm, "bench.kubefan.io/sent-ns")
	if s.events == 0 || sent < s.firstSentNs {
		s.firstSentNs = sent
	}
	s.events++
	s.lastRecvNs = recv
	s.latencies = append(s.latencies, recv-sent)
	if seq == s.want-1 {
		close(s.done)
	}
}

func percentileUs(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1)*p + 0.5)
	return float64(sorted[i]) / 1000
}

func runFanout(args []string) {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	kc := fs.String("kubeconfig", "", "kubeconfig of the stream server")
	subs := fs.Int("subscribers", 1, "event handlers on the informer")
	events := fs.Int64("events", 100000, "watch events the server sends")
	objects := fs.Int("objects", 100, "objects in the list")
	timeout := fs.Int("timeout", 120, "seconds before giving up")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here")
	_ = fs.Parse(args)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail("cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail("cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *kc == "" || *subs < 1 {
		fail("fanout needs --kubeconfig and --subscribers >= 1")
	}

	cs, err := kubernetes.NewForConfig(restConfig(*kc))
	if err != nil {
		fail("clientset: %v", err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithNamespace("bench"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	all := make([]*seen, *subs)
	for i := range all {
		s := &seen{done: make(chan struct{}), want: *events,
			latencies: make([]int64, 0, *events)}
		all[i] = s
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    s.observe,
			UpdateFunc: func(_, n any) { s.observe(n) },
		})
		if err != nil {
			fail("AddEventHandler: %v", err)
		}
	}
	stop := make(chan struct{})
	factory.Start(stop)

	deadline := time.After(time.Duration(*timeout) * time.Second)
	timedOut := false
	for _, s := range all {
		select {
		case <-s.done:
		case <-deadline:
			timedOut = true
		}
		if timedOut {
			break
		}
	}
	close(stop)

	// Only handlers that finished are read: their done channel orders
	// their writes before these reads.
	var merged []int64
	var delivered int64
	first, last := int64(0), int64(0)
	complete := 0
	for _, s := range all {
		select {
		case <-s.done:
		default:
			continue
		}
		complete++
		delivered += s.events
		merged = append(merged, s.latencies...)
		if first == 0 || s.firstSentNs < first {
			first = s.firstSentNs
		}
		if s.lastRecvNs > last {
			last = s.lastRecvNs
		}
	}
	sort.Slice(merged, func(a, b int) bool { return merged[a] < merged[b] })
	secs := float64(last-first) / 1e9
	perSub := 0.0
	if secs > 0 {
		perSub = float64(*events) / secs
	}
	result(map[string]any{
		"bench": "fanout", "impl": "client-go",
		"subscribers": *subs, "events": *events, "objects": *objects,
		"complete_subscribers": complete, "delivered": delivered,
		"seconds":                round(secs, 4),
		"events_per_sec_per_sub": round(perSub, 0),
		"events_per_sec_total":   round(perSub*float64(*subs), 0),
		"p50_us":                 round(percentileUs(merged, 0.50), 1),
		"p99_us":                 round(percentileUs(merged, 0.99), 1),
	})
	if complete != *subs {
		fail("%d of %d handlers did not see every event", *subs-complete,
			*subs)
	}
}

func round(v float64, digits int) float64 {
	p, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', digits, 64), 64)
	return p
}

// ---- informers ----

func runInformers(args []string) {
	fs := flag.NewFlagSet("informers", flag.ExitOnError)
	kc := fs.String("kubeconfig", "", "kubeconfig of the API server")
	count := fs.Int("count", 1, "independent informers")
	ns := fs.String("namespace", "", "namespace to watch")
	duration := fs.Int("duration", 3600, "seconds to run at most")
	_ = fs.Parse(args)
	if *kc == "" || *ns == "" || *count < 1 {
		fail("informers needs --kubeconfig, --namespace, --count >= 1")
	}

	stop := make(chan struct{})
	counts := make([]atomic.Int64, *count)
	synced := make([]cache.InformerSynced, *count)
	for i := 0; i < *count; i++ {
		cfg := restConfig(*kc)
		// A dialer of its own makes client-go build a separate transport
		// (and so a separate connection) per informer, as separate
		// controller processes would have.
		cfg.Dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			fail("clientset %d: %v", i, err)
		}
		f := informers.NewSharedInformerFactoryWithOptions(cs, 0,
			informers.WithNamespace(*ns))
		inf := f.Core().V1().ConfigMaps().Informer()
		c := &counts[i]
		bump := func(any) { c.Add(1) }
		_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    bump,
			UpdateFunc: func(_, n any) { bump(n) },
			DeleteFunc: bump,
		})
		if err != nil {
			fail("AddEventHandler: %v", err)
		}
		synced[i] = inf.HasSynced
		f.Start(stop)
	}
	if !cache.WaitForCacheSync(stop, synced...) {
		fail("informers did not sync")
	}
	fmt.Printf("SYNCED %d\n", *count)
	_ = os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(time.Duration(*duration) * time.Second):
	}
	close(stop)
	var total, min int64 = 0, -1
	for i := range counts {
		v := counts[i].Load()
		total += v
		if min < 0 || v < min {
			min = v
		}
	}
	result(map[string]any{"bench": "apiload-informers",
		"informers": *count, "events_received": total,
		"min_per_informer": min})
}

// ---- churn ----

func runChurn(args []string) {
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	kc := fs.String("kubeconfig", "", "kubeconfig of the API server")
	ns := fs.String("namespace", "", "namespace to write in")
	objects := fs.Int("objects", 20, "ConfigMaps to create")
	updates := fs.Int("updates", 200, "updates spread over them")
	_ = fs.Parse(args)
	if *kc == "" || *ns == "" || *objects < 1 {
		fail("churn needs --kubeconfig, --namespace, --objects >= 1")
	}
	cs, err := kubernetes.NewForConfig(restConfig(*kc))
	if err != nil {
		fail("clientset: %v", err)
	}
	ctx := context.Background()
	start := time.Now()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: *ns}}
	_, err = cs.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		fail("namespace %s: %v", *ns, err)
	}
	cms := cs.CoreV1().ConfigMaps(*ns)
	objs := make([]*corev1.ConfigMap, *objects)
	for i := range objs {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%04d", i)},
			Data:       map[string]string{"n": "0", "pad": padding},
		}
		got, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, err = cms.Get(ctx, cm.Name, metav1.GetOptions{})
		}
		if err != nil {
			fail("create %s: %v", cm.Name, err)
		}
		objs[i] = got
	}
	var wg sync.WaitGroup
	var writes atomic.Int64
	// Update k goes to object k % objects; four writers each own the
	// objects whose index is theirs modulo 4, so no two write the same
	// object and no update conflicts.
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for u := 0; u < *updates; u++ {
				i := u % *objects
				if i%4 != w {
					continue
				}
				cm := objs[i].DeepCopy()
				cm.Data["n"] = strconv.Itoa(u + 1)
				got, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
				if err != nil {
					fail("update %s: %v", cm.Name, err)
				}
				objs[i] = got
				writes.Add(1)
			}
		}(w)
	}
	wg.Wait()
	result(map[string]any{"bench": "apiload-churn", "namespace": *ns,
		"objects": *objects, "updates": writes.Load(),
		"seconds": round(time.Since(start).Seconds(), 3)})
}

// About 1 KiB of data per ConfigMap, so that bytes on the wire are visible.
var padding = func() string {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return string(b)
}()

func main() {
	if len(os.Args) < 2 {
		fail("usage: peer-client-go fanout|informers|churn [flags]")
	}
	switch os.Args[1] {
	case "fanout":
		runFanout(os.Args[2:])
	case "informers":
		runInformers(os.Args[2:])
	case "churn":
		runChurn(os.Args[2:])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
