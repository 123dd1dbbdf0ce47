# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mdt_global_optspecs
    string join \n h/help V/version
end

function __fish_mdt_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mdt_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mdt_using_subcommand
    set -l cmd (__fish_mdt_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mdt -n "__fish_mdt_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mdt -n "__fish_mdt_needs_command" -s V -l version -d 'Print version'
complete -c mdt -n "__fish_mdt_needs_command" -f -a "inspect" -d 'Show what mdt reads from a Go binary: version, map functions, probe offsets'
complete -c mdt -n "__fish_mdt_needs_command" -f -a "trace" -d 'Trace map deletes in a running process, or in a program mdt starts'
complete -c mdt -n "__fish_mdt_needs_command" -f -a "flame" -d 'Draw the code paths that lead to map deletes: flame graph, folded stacks or pprof'
complete -c mdt -n "__fish_mdt_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -s p -l pid -d 'Read the executable of this running process (through /proc/PID/exe)' -r
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -l comm -d 'Only processes whose command name (/proc/PID/comm) matches REGEX' -r
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -l exe -d 'Only processes whose executable\'s path matches REGEX' -r
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -l container -d 'Only processes in this container (its id, or the first digits of it, as `docker ps` or `podman ps` shows them)' -r
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -l cgroup -d 'Only processes in this cgroup or below it: a cgroup path (/kubepods.slice) or a directory under /sys/fs/cgroup' -r
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -l all -d 'List the node\'s Go processes (those the filters keep): pid, command, Go version, container, and whether mdt can trace each'
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -l json -d 'Print one JSON object instead of the report'
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mdt -n "__fish_mdt_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -s p -l pid -d 'Attach to this running process' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -s d -l duration -d 'Stop after this long (e.g. 30s, 5m, 1h30m)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l sample -d 'Record details for this fraction of deletes, 0 < RATE <= 1 (counts stay exact)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l key-bytes -d 'Bytes of each key to capture, with what its strings and interfaces point to (longer keys are marked truncated)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l stack-depth -d 'Stack frames to capture per delete' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l map-type -d 'Keep only deletes whose map type matches this regex (e.g. \'main\\.UserMap\')' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l func -d 'Keep only deletes with a stack frame whose function matches this regex' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l label-bytes -d 'Bytes kept of each goroutine label\'s key and of its value (longer ones are cut and the record says labels_truncated)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l labels -d 'Keep only these goroutine labels (e.g. tenant,endpoint)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l label-filter -d 'Keep only deletes whose goroutine has label KEY matching REGEX (e.g. tenant=^t1$)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l map-refresh -d 'How often each map watched is read again even when nothing deletes from it (a map freed since is then reported gone). A map deleted from is read at most once a second' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l fatal-window -d 'The window before a fatal error whose deletes and clears the `fatal` record counts (exactly, in the kernel) and lists (at most 1s)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -s o -l output -d 'Write the records to FILE instead of standard output' -r -F
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l buffer-size -d 'Size of the kernel\'s buffer of records (a power of two, e.g. 4M, 32M, 256M): a larger one absorbs longer bursts before records are lost' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l max-stacks -d 'Distinct stacks kept symbolized and rendered (more: faster on a program with many hot stacks, at ~2 KB each)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l max-rows -d 'Rows of each table of the terminal UI (callers, maps, stacks); when a table is full its least recently active quarter is dropped' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l latency-sample -d 'Like --latency, but with the exit probes armed 1s in every 1/FRACTION s (0.01: 1s in 100): outcomes and durations of the calls in those windows, at that share of the cost; the counts stay exact. The default with --prometheus, --alert or the terminal UI is 0.01' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l prometheus -d 'Serve Prometheus metrics at http://ADDR/metrics while tracing. ADDR is HOST:PORT, or :PORT / PORT for 127.0.0.1 (see docs/monitoring.md)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l linger -d 'After the target has exited, keep serving its last metrics for DURATION (with --prometheus), so that the next scrape sees how it ended (mdt_target_up 0, go_map_fatal_total); Ctrl-C ends it early' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l max-series -d 'At most N (map_type, caller) label pairs; deletes at further call sites are counted under caller="other"' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l metric-labels -d 'Also count deletes per map type and value of these goroutine labels (go_map_delete_by_label_total{map_type, label_KEY...}), from the delete records; at most --max-series series, the rest under "other"' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l alert -d 'Alert rule, repeatable: e.g. \'count(map) > 100 within 5m\', \'rate(caller) > 1000/s within 30s\' (syntax: docs/monitoring.md)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l alerts -d 'Alert rules from a TOML or YAML file' -r -F
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l webhook -d 'POST each alert (and its resolution) to URL' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l webhook-format -d 'Body of the webhook POST: mdt\'s alert JSON, or Slack\'s {"text": ...}' -r -f -a "json\t''
slack\t''"
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l webhook-timeout -d 'Give up one webhook attempt after this long (3 attempts per alert)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l alert-exec -d 'Run CMD for each alert with the alert JSON on its standard input (no shell: CMD is split on spaces)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l alert-cooldown -d 'A rule that fired for a group does not fire again for it before this long has passed (0s: every time it crosses the threshold)' -r
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l redact-keys -d 'Replace key values by a stable hash (for keys that may be personal data)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l redact-labels -d 'Replace label values by a stable hash (as --redact-keys does keys)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l no-labels -d 'Do not read goroutine labels at all (the probe then reads less of each goroutine; docs/performance.md)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l no-map-memory -d 'Do not read the memory of the maps deleted from (their capacity, bytes and fill: `map` records, `map_cap`, the Maps view\'s CAP, BYTES and FILL, the go_map_bytes metrics). `mdt flame` never does'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l no-hold -d 'When the target dies of a fatal error ("concurrent map writes"), do not stop it for the moment it takes to read what its other threads were running (the `fatal` record then has no `running`)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l no-forensics -d 'No probe on the runtime\'s fatal errors at all'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l json -d 'One JSON object per line (schema: docs/json.md)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l no-tui -d 'Print one line per delete even on a terminal (no interactive UI)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l latency -d 'Measure what each call did (removed an entry, or the key was absent) and how long it took, with a probe on each exit of the runtime function: a second, single-stepped trap per call (docs/performance.md)'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l no-latency -d 'No exit probes, even with --prometheus, --alert or the terminal UI'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -l quiet -d 'No records: only metrics, alerts and a summary line on stderr'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mdt -n "__fish_mdt_using_subcommand trace" -s V -l version -d 'Print version'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -s p -l pid -d 'Attach to this running process' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -s d -l duration -d 'Stop after this long (e.g. 30s, 5m, 1h30m)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l sample -d 'Record details for this fraction of deletes, 0 < RATE <= 1 (counts stay exact)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l key-bytes -d 'Bytes of each key to capture, with what its strings and interfaces point to (longer keys are marked truncated)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l stack-depth -d 'Stack frames to capture per delete' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l map-type -d 'Keep only deletes whose map type matches this regex (e.g. \'main\\.UserMap\')' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l func -d 'Keep only deletes with a stack frame whose function matches this regex' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l label-bytes -d 'Bytes kept of each goroutine label\'s key and of its value (longer ones are cut and the record says labels_truncated)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l labels -d 'Keep only these goroutine labels (e.g. tenant,endpoint)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l label-filter -d 'Keep only deletes whose goroutine has label KEY matching REGEX (e.g. tenant=^t1$)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l map-refresh -d 'How often each map watched is read again even when nothing deletes from it (a map freed since is then reported gone). A map deleted from is read at most once a second' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l fatal-window -d 'The window before a fatal error whose deletes and clears the `fatal` record counts (exactly, in the kernel) and lists (at most 1s)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -s o -l output -d 'Output file; repeat for several (format from the extension: .svg, .folded/.txt, .pb.gz/.pprof). Default: deletes.svg' -r -F
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l format -d 'Output format, whatever the file names say' -r -f -a "svg\t''
folded\t''
pprof\t''"
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l from -d 'Read a saved folded file or `mdt trace --json` output instead of tracing' -r -F
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l title -d 'Title of the flame graph' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l group-by -d 'Add a root frame per map type, key type, goroutine, or value of the goroutine label KEY: map-type, key-type, goroutine, label:KEY, none. (label:KEY reads a record per delete instead of counting in the kernel.)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l min-count -d 'Drop stacks seen fewer than N times (by --weight latency: of less than N ns)' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l weight -d 'What each stack weighs: the calls made on it (count), or the time spent in them (latency, in nanoseconds: measured with a probe on each exit of the runtime function, a second trap per call, as `mdt trace --latency`; with --from, each record\'s duration_ns)' -r -f -a "count\t'The calls (deletes and clears) made on the stack'
latency\t'The time spent in them, in nanoseconds (measured at each call\'s exit)'"
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l max-stacks -d 'Distinct stacks the kernel counts (more: a program with more code paths to deletes is drawn whole, at ~1 KB of kernel memory each); deletes on further stacks are drawn as [stack not recorded]' -r
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l redact-keys -d 'Replace key values by a stable hash (for keys that may be personal data)'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l redact-labels -d 'Replace label values by a stable hash (as --redact-keys does keys)'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l no-labels -d 'Do not read goroutine labels at all (the probe then reads less of each goroutine; docs/performance.md)'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l no-map-memory -d 'Do not read the memory of the maps deleted from (their capacity, bytes and fill: `map` records, `map_cap`, the Maps view\'s CAP, BYTES and FILL, the go_map_bytes metrics). `mdt flame` never does'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l no-hold -d 'When the target dies of a fatal error ("concurrent map writes"), do not stop it for the moment it takes to read what its other threads were running (the `fatal` record then has no `running`)'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l no-forensics -d 'No probe on the runtime\'s fatal errors at all'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l inverted -d 'Icicle graph: the deletes on top, their callers below'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -l runtime-frames -d 'Keep the Go runtime frames above the delete (by default the delete function is the leaf, right above the code that called it)'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mdt -n "__fish_mdt_using_subcommand flame" -s V -l version -d 'Print version'
complete -c mdt -n "__fish_mdt_using_subcommand help; and not __fish_seen_subcommand_from inspect trace flame help" -f -a "inspect" -d 'Show what mdt reads from a Go binary: version, map functions, probe offsets'
complete -c mdt -n "__fish_mdt_using_subcommand help; and not __fish_seen_subcommand_from inspect trace flame help" -f -a "trace" -d 'Trace map deletes in a running process, or in a program mdt starts'
complete -c mdt -n "__fish_mdt_using_subcommand help; and not __fish_seen_subcommand_from inspect trace flame help" -f -a "flame" -d 'Draw the code paths that lead to map deletes: flame graph, folded stacks or pprof'
complete -c mdt -n "__fish_mdt_using_subcommand help; and not __fish_seen_subcommand_from inspect trace flame help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
