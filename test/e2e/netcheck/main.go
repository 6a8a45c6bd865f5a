// netcheck: the e2e's workload, one static Go binary (no libc, no NSS: a glibc-static busybox segfaulted resolving
// names inside the pods). Go's own resolver reads the resolv.conf kubelet gives the pod, so a lookup goes to CoreDNS.
//
//	netcheck serve <port>             HTTP: "served by <hostname>"
//	netcheck client <ip:port> <name>  GET the pod by IP, look the service name up, GET it by name; "---" between
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func retry(what string, f func() (string, error)) string {
	var err error
	for i := 0; i < 30; i++ {
		var out string
		if out, err = f(); err == nil {
			return out
		}
		time.Sleep(2 * time.Second)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
	os.Exit(1)
	return ""
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	r, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "serve" {
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "served by %s\n", host) })
		if err := http.ListenAndServe(":"+os.Args[2], nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "client" {
		fmt.Print(retry("pod by IP", func() (string, error) { return get("http://" + os.Args[2] + "/") }))
		fmt.Println("---")
		fmt.Println(retry("lookup", func() (string, error) {
			addrs, err := net.LookupHost(os.Args[3])
			return fmt.Sprintf("%s: %v", os.Args[3], addrs), err
		}))
		fmt.Println("---")
		fmt.Print(retry("service by name", func() (string, error) { return get("http://" + os.Args[3] + "/") }))
		return
	}
	fmt.Fprintln(os.Stderr, "usage: netcheck serve <port> | netcheck client <ip:port> <name>")
	os.Exit(2)
}
