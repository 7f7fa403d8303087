# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kubesu_global_optspecs
    string join \n config= h/help V/version
end

function __fish_kubesu_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kubesu_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kubesu_using_subcommand
    set -l cmd (__fish_kubesu_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kubesu -n "__fish_kubesu_needs_command" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_needs_command" -s h -l help -d 'Print help'
complete -c kubesu -n "__fish_kubesu_needs_command" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "run" -d 'Run COMMAND as --user with credentials for this run only: authorize, prepare the namespace, ServiceAccount, RoleBinding and token, hand them over in a private directory, drop privileges, run, then revoke'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "shell" -d 'Start the user\'s login shell with the run\'s credentials, for debugging from a terminal (in a pty of kubesu\'s, with job control); revoked when the shell exits'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "gc" -d 'Remove what crashed runs left behind: expired or ownerless leases, Spark leftovers, per-run namespaces, stale run directories (keeping their drivers\' logs first), the cgroups of runs whose kubesu died and what is left in them; and kept driver logs past their retention. For cron'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "list" -d 'List live leases: user, namespace, age, expiry, host, pid'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "revoke" -d 'Revoke a run\'s credentials now, by run id or for every run of a user (keeping their drivers\' logs first)'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "check" -d 'Check the configuration, file modes, the cluster and kubesu\'s own permissions; exit 0 only when everything holds'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "rbac" -d 'Print the RBAC manifests an administrator applies once: `kubesu rbac | kubectl apply -f -`'
complete -c kubesu -n "__fish_kubesu_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -s u -l user -d 'The end user the command runs as' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -l team -d 'The team (a group the user belongs to), for per-team namespaces' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -l ttl -d 'Token lifetime, e.g. 600s, 30m, 2h (at least 10m, at most the configured maximum)' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -l dry-run -d 'Print the plan (namespace, objects, forced arguments, environment) and touch nothing'
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -s v -l verbose -d 'Print each phase with its duration on stderr'
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -l json -d 'Print the run record as one JSON object on stderr at the end'
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -s h -l help -d 'Print help'
complete -c kubesu -n "__fish_kubesu_using_subcommand run" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -s u -l user -d 'The end user the command runs as' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -l team -d 'The team (a group the user belongs to), for per-team namespaces' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -l ttl -d 'Token lifetime, e.g. 600s, 30m, 2h (at least 10m, at most the configured maximum)' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -l shell -d 'The shell to start instead of the user\'s login shell; it must be listed in /etc/shells (and, for a sudo caller, under [[command]])' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -l dry-run -d 'Print the plan (namespace, objects, forced arguments, environment) and touch nothing'
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -s v -l verbose -d 'Print each phase with its duration on stderr'
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -l json -d 'Print the run record as one JSON object on stderr at the end'
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -s h -l help -d 'Print help'
complete -c kubesu -n "__fish_kubesu_using_subcommand shell" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand gc" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand gc" -l dry-run -d 'Say what would be removed, remove nothing'
complete -c kubesu -n "__fish_kubesu_using_subcommand gc" -l json -d 'Machine-readable output'
complete -c kubesu -n "__fish_kubesu_using_subcommand gc" -s h -l help -d 'Print help'
complete -c kubesu -n "__fish_kubesu_using_subcommand gc" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand list" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand list" -l json -d 'Machine-readable output'
complete -c kubesu -n "__fish_kubesu_using_subcommand list" -s h -l help -d 'Print help'
complete -c kubesu -n "__fish_kubesu_using_subcommand list" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand revoke" -l user -d 'Revoke every live run of this user' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand revoke" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand revoke" -l end -d 'End the runs\' commands too, as at their maximum run time (TERM, a grace period, KILL; the run exits 124). Only runs supervised on this host can be ended from here; elsewhere only the credentials are revoked'
complete -c kubesu -n "__fish_kubesu_using_subcommand revoke" -s h -l help -d 'Print help'
complete -c kubesu -n "__fish_kubesu_using_subcommand revoke" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand check" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand check" -l json -d 'Machine-readable output'
complete -c kubesu -n "__fish_kubesu_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubesu -n "__fish_kubesu_using_subcommand check" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand rbac" -l user -d 'The Kubernetes user kubesu\'s kubeconfig authenticates as (e.g. a client certificate\'s CN) [default: kubesu]' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand rbac" -l service-account -d 'Or the ServiceAccount it authenticates as' -r
complete -c kubesu -n "__fish_kubesu_using_subcommand rbac" -l config -d 'Configuration file. Honoured only for root callers that did not come through sudo: a sudo caller cannot choose its own policy' -r -F
complete -c kubesu -n "__fish_kubesu_using_subcommand rbac" -l admission -d 'Print kubesu\'s admission policies instead (Kubernetes 1.30 or later): what RBAC cannot say about the runs\' tokens, namespace ownership and kubesu\'s own identity'
complete -c kubesu -n "__fish_kubesu_using_subcommand rbac" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubesu -n "__fish_kubesu_using_subcommand rbac" -s V -l version -d 'Print version'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "run" -d 'Run COMMAND as --user with credentials for this run only: authorize, prepare the namespace, ServiceAccount, RoleBinding and token, hand them over in a private directory, drop privileges, run, then revoke'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "shell" -d 'Start the user\'s login shell with the run\'s credentials, for debugging from a terminal (in a pty of kubesu\'s, with job control); revoked when the shell exits'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "gc" -d 'Remove what crashed runs left behind: expired or ownerless leases, Spark leftovers, per-run namespaces, stale run directories (keeping their drivers\' logs first), the cgroups of runs whose kubesu died and what is left in them; and kept driver logs past their retention. For cron'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "list" -d 'List live leases: user, namespace, age, expiry, host, pid'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "revoke" -d 'Revoke a run\'s credentials now, by run id or for every run of a user (keeping their drivers\' logs first)'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "check" -d 'Check the configuration, file modes, the cluster and kubesu\'s own permissions; exit 0 only when everything holds'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "rbac" -d 'Print the RBAC manifests an administrator applies once: `kubesu rbac | kubectl apply -f -`'
complete -c kubesu -n "__fish_kubesu_using_subcommand help; and not __fish_seen_subcommand_from run shell gc list revoke check rbac help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
