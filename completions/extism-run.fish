# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_extism_run_global_optspecs
    string join \n v/verbose q/quiet h/help V/version
end

function __fish_extism_run_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_extism_run_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_extism_run_using_subcommand
    set -l cmd (__fish_extism_run_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c extism-run -n "__fish_extism_run_needs_command" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_needs_command" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c extism-run -n "__fish_extism_run_needs_command" -s V -l version -d 'Print version'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "call" -d 'Call a plugin function and write its output to stdout'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "exists" -d 'Exit 0 if the plugin exports every FUNCTION as a plugin function, 1 if not'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "config" -d 'Print the manifest that PLUGIN and the flags resolve to, as JSON'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "reset" -d 'Clear what is kept between runs: the compiled-module cache and a --state file'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "log" -d 'Call a plugin function and print its log lines on stdout'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "inspect" -d 'Describe a plugin: size, hash, imports, exports and memory of each module'
complete -c extism-run -n "__fish_extism_run_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l link -d 'Add the module at PATH (a file or URL) under NAME, for imports from module NAME; PATH alone uses its file name without extension as NAME (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -s i -l input -d 'Input bytes for the call' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l input-file -d 'Read the input from a file' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l allow-path -d 'Let a WASI plugin use a host directory: HOST:GUEST, HOST::GUEST or PATH (same path in both); prefix ro: for read-only access (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l allow-host -d 'Let the plugin make HTTP requests to HOST; globs such as *.example.com work (repeatable; without it every request fails)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l timeout -d 'Stop a call after MS milliseconds (0: the manifest\'s limit, if any)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l memory-max -d 'Limit the plugin\'s memory to PAGES pages of 64 KiB (0: the manifest\'s limit, if any)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l http-response-max -d 'Limit HTTP response bodies to BYTES (-1: no limit)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l var-max -d 'Limit the plugin\'s vars to BYTES in total (0 disables vars; -1: no limit)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l config -d 'Set a config value the plugin reads; KEY alone sets it to "" (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l set-config -d 'Set config values from a JSON object of strings; --config wins over it' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l fuel -d 'Stop a call after N units of fuel (about N wasm instructions)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l loop -d 'Call the function N times on one plugin instance; each output is then followed by a newline' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l state -d 'Restore the plugin\'s vars from FILE before the first call and save them after the last (a missing FILE starts empty; an interrupted run leaves FILE as it was)' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l profile -d 'Write a sampling profile of the calls to FILE: a flame graph for FILE.svg (opens in a browser), a Firefox Profiler profile for FILE.json. Every --loop call goes into one profile, also when a call times out or Ctrl-C stops it' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l profile-interval -d 'How often --profile samples the stack: 1ms, 250us, 0.5ms, 1s [default: 1ms]' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l log-level -d 'Print the plugin\'s log messages at LEVEL and above on stderr [default: error, none with -q]' -r -f -a "trace\t''
debug\t''
info\t''
warn\t''
error\t''"
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -s m -l manifest -d 'Read PLUGIN as a manifest (JSON or TOML) whatever it looks like'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l stdin -d 'Read the input from stdin'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l wasi -d 'Enable WASI preview 1 (with `call`, the plugin\'s WASI stdout and stderr reach this process\'s stdout and stderr; see --no-wasi-output)'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l enable-http-response-headers -d 'Let the plugin read HTTP response headers'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l stats -d 'Print the load time, and each call\'s time and output size, on stderr'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l no-cache -d 'Neither read nor write the compiled-module cache'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -l no-wasi-output -d 'Discard the plugin\'s WASI stdout and stderr. Without it, --wasi lets them through: the guest\'s stdout goes to stdout as the plugin writes it, before that call\'s output (output_set), and its stderr to stderr'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_using_subcommand call" -s h -l help -d 'Print help'
complete -c extism-run -n "__fish_extism_run_using_subcommand exists" -l link -d 'Add the module at PATH (a file or URL) under NAME, for imports from module NAME; PATH alone uses its file name without extension as NAME (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand exists" -s m -l manifest -d 'Read PLUGIN as a manifest (JSON or TOML) whatever it looks like'
complete -c extism-run -n "__fish_extism_run_using_subcommand exists" -l no-cache -d 'Neither read nor write the compiled-module cache'
complete -c extism-run -n "__fish_extism_run_using_subcommand exists" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_using_subcommand exists" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_using_subcommand exists" -s h -l help -d 'Print help'
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l link -d 'Add the module at PATH (a file or URL) under NAME, for imports from module NAME; PATH alone uses its file name without extension as NAME (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l allow-path -d 'Let a WASI plugin use a host directory: HOST:GUEST, HOST::GUEST or PATH (same path in both); prefix ro: for read-only access (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l allow-host -d 'Let the plugin make HTTP requests to HOST; globs such as *.example.com work (repeatable; without it every request fails)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l timeout -d 'Stop a call after MS milliseconds (0: the manifest\'s limit, if any)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l memory-max -d 'Limit the plugin\'s memory to PAGES pages of 64 KiB (0: the manifest\'s limit, if any)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l http-response-max -d 'Limit HTTP response bodies to BYTES (-1: no limit)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l var-max -d 'Limit the plugin\'s vars to BYTES in total (0 disables vars; -1: no limit)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l config -d 'Set a config value the plugin reads; KEY alone sets it to "" (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l set-config -d 'Set config values from a JSON object of strings; --config wins over it' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -l write -d 'Save the manifest to FILE (usable with `call -m FILE`) instead of printing it' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -s m -l manifest -d 'Read PLUGIN as a manifest (JSON or TOML) whatever it looks like'
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_using_subcommand config" -s h -l help -d 'Print help'
complete -c extism-run -n "__fish_extism_run_using_subcommand reset" -l state -d 'Also remove this state file (written by `call --state FILE`)' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand reset" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_using_subcommand reset" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_using_subcommand reset" -s h -l help -d 'Print help'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l link -d 'Add the module at PATH (a file or URL) under NAME, for imports from module NAME; PATH alone uses its file name without extension as NAME (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -s i -l input -d 'Input bytes for the call' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l input-file -d 'Read the input from a file' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l allow-path -d 'Let a WASI plugin use a host directory: HOST:GUEST, HOST::GUEST or PATH (same path in both); prefix ro: for read-only access (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l allow-host -d 'Let the plugin make HTTP requests to HOST; globs such as *.example.com work (repeatable; without it every request fails)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l timeout -d 'Stop a call after MS milliseconds (0: the manifest\'s limit, if any)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l memory-max -d 'Limit the plugin\'s memory to PAGES pages of 64 KiB (0: the manifest\'s limit, if any)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l http-response-max -d 'Limit HTTP response bodies to BYTES (-1: no limit)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l var-max -d 'Limit the plugin\'s vars to BYTES in total (0 disables vars; -1: no limit)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l config -d 'Set a config value the plugin reads; KEY alone sets it to "" (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l set-config -d 'Set config values from a JSON object of strings; --config wins over it' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l fuel -d 'Stop a call after N units of fuel (about N wasm instructions)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l loop -d 'Call the function N times on one plugin instance; each output is then followed by a newline' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l state -d 'Restore the plugin\'s vars from FILE before the first call and save them after the last (a missing FILE starts empty; an interrupted run leaves FILE as it was)' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l profile -d 'Write a sampling profile of the calls to FILE: a flame graph for FILE.svg (opens in a browser), a Firefox Profiler profile for FILE.json. Every --loop call goes into one profile, also when a call times out or Ctrl-C stops it' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l profile-interval -d 'How often --profile samples the stack: 1ms, 250us, 0.5ms, 1s [default: 1ms]' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l level -d 'Print log lines at LEVEL and above' -r -f -a "trace\t''
debug\t''
info\t''
warn\t''
error\t''"
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l format -d 'text: `LEVEL SOURCE: MESSAGE`; json: one object per line with level, source, target, message and fields (SOURCE is `guest` for the plugin\'s own lines, else `runtime`)' -r -f -a "text\t''
json\t''"
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l output -d 'Write the plugin\'s output to FILE instead of discarding it' -r -F
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -s m -l manifest -d 'Read PLUGIN as a manifest (JSON or TOML) whatever it looks like'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l stdin -d 'Read the input from stdin'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l wasi -d 'Enable WASI preview 1 (with `call`, the plugin\'s WASI stdout and stderr reach this process\'s stdout and stderr; see --no-wasi-output)'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l enable-http-response-headers -d 'Let the plugin read HTTP response headers'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l stats -d 'Print the load time, and each call\'s time and output size, on stderr'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -l no-cache -d 'Neither read nor write the compiled-module cache'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_using_subcommand log" -s h -l help -d 'Print help'
complete -c extism-run -n "__fish_extism_run_using_subcommand inspect" -l link -d 'Add the module at PATH (a file or URL) under NAME, for imports from module NAME; PATH alone uses its file name without extension as NAME (repeatable)' -r
complete -c extism-run -n "__fish_extism_run_using_subcommand inspect" -s m -l manifest -d 'Read PLUGIN as a manifest (JSON or TOML) whatever it looks like'
complete -c extism-run -n "__fish_extism_run_using_subcommand inspect" -l json -d 'Print JSON instead of text'
complete -c extism-run -n "__fish_extism_run_using_subcommand inspect" -s v -l verbose -d 'Print what the tool does on stderr (cache use, each call), and errors one cause per line'
complete -c extism-run -n "__fish_extism_run_using_subcommand inspect" -s q -l quiet -d 'Print nothing on stderr except errors and what was asked for (--stats, --log-level)'
complete -c extism-run -n "__fish_extism_run_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "call" -d 'Call a plugin function and write its output to stdout'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "exists" -d 'Exit 0 if the plugin exports every FUNCTION as a plugin function, 1 if not'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "config" -d 'Print the manifest that PLUGIN and the flags resolve to, as JSON'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "reset" -d 'Clear what is kept between runs: the compiled-module cache and a --state file'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "log" -d 'Call a plugin function and print its log lines on stdout'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "inspect" -d 'Describe a plugin: size, hash, imports, exports and memory of each module'
complete -c extism-run -n "__fish_extism_run_using_subcommand help; and not __fish_seen_subcommand_from call exists config reset log inspect help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
