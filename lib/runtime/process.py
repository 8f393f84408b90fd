"""Process conventions every rnnlab program shares (no heavy imports: sweep workers
read them): exit statuses and the environment variable that ties a trial to its sweep."""

EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
EXIT_SIGTERM = 143      # SIGTERM (128 + SIGTERM): a scheduler's preemption
# ``RNNLAB_STOP_WITH_PARENT=<pid>``: the process gets SIGTERM when that parent dies
# (lib.runtime.cli.stop_with_parent).
STOP_WITH_PARENT = "RNNLAB_STOP_WITH_PARENT"
