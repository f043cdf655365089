"""All configuration options, registered on the global ``CONF``.

Option names follow the original Karbor where it had them, so existing
``karbor.conf`` files keep working.  ``list_opts`` feeds
``oslo-config-generator`` (namespace ``karbor``) so the sample file is
generated from this module rather than written by hand.
"""

from __future__ import annotations

import os

from oslo_config import cfg

CONF = cfg.CONF

cli_opts = [
    cfg.BoolOpt("debug", short="d", default=False, help="Log at DEBUG level."),
    cfg.StrOpt("state_path", default=os.path.join(os.path.expanduser("~"), ".karbor"),
               sample_default="<home directory of the user>/.karbor",
               help="Directory where Karbor keeps its state (SQLite database and the "
                    "default file-system bank in embedded mode)."),
]

core_opts = [
    cfg.StrOpt("host", default=os.uname().nodename, sample_default="<this machine's hostname>",
               help="Name of this node, as shown by service-list."),
    cfg.StrOpt("auth_strategy", default="noauth", choices=["noauth", "keystone"],
               help="How API requests are authenticated."),
    cfg.StrOpt("noauth_admin_user", default="admin",
               help="In noauth mode, the user name that holds the admin role. Every other "
                    "user is a plain member of the project named in its token."),
    cfg.StrOpt("osapi_karbor_listen", default="127.0.0.1",
               help="IP address on which the API listens."),
    cfg.PortOpt("osapi_karbor_listen_port", default=8799,
                help="Port on which the API listens."),
    cfg.IntOpt("osapi_karbor_workers", default=8, min=1,
               help="Number of threads serving API requests."),
    cfg.StrOpt("osapi_karbor_base_URL",
               help="Base URL used in *_links (scheme://host[:port][/prefix]); "
                    "defaults to the request's host URL."),
    cfg.IntOpt("osapi_max_limit", default=1000, min=1,
               help="Largest number of items a collection returns in one response."),
    cfg.StrOpt("provider_config_dir",
               sample_default="<the built-in providers.d of the karbor package>",
               help="Directory with provider definitions (*.conf). Unset: the built-in "
                    "providers (No-Op, Local, and the OpenStack ones with Keystone), "
                    "whether or not a config file is given. A relative path is taken "
                    "relative to the directory of the first config file."),
    cfg.BoolOpt("use_forwarded_for", default=False,
                help="Take the client address from X-Forwarded-For."),
    cfg.ListOpt("query_plan_filters", default=["name", "status", "description"],
                help="Plan filters a non-admin user may use."),
    cfg.ListOpt("query_restore_filters", default=["status"],
                help="Restore filters a non-admin user may use."),
    cfg.ListOpt("query_verification_filters", default=["status"],
                help="Verification filters a non-admin user may use."),
    cfg.ListOpt("query_operation_log_filters",
                default=["checkpoint_id", "plan_id", "restore_id", "status"],
                help="Operation log filters a non-admin user may use."),
    cfg.ListOpt("query_provider_filters", default=["name", "description"],
                help="Provider filters a non-admin user may use."),
    cfg.ListOpt("query_checkpoint_filters",
                default=["project_id", "plan_id", "start_date", "end_date"],
                help="Checkpoint filters a non-admin user may use."),
    cfg.ListOpt("query_instance_filters", default=["status"],
                help="Protectable instance filters a non-admin user may use."),
    cfg.IntOpt("quota_plans", default=50, min=-1,
               help="Default number of plans per project (-1: unlimited)."),
    cfg.IntOpt("quota_checkpoints", default=-1, min=-1,
               help="Default number of checkpoints per project (-1: unlimited)."),
    cfg.IntOpt("report_interval", default=10, min=1,
               help="Seconds between service heartbeats."),
    cfg.IntOpt("service_down_time", default=60, min=1,
               help="A service whose last heartbeat is older than this is reported down."),
    cfg.IntOpt("max_concurrent_operations", default=4, min=1,
               help="Operations (protect, restore, ...) one protection worker runs at once."),
    cfg.IntOpt("max_parallel_hooks", default=4, min=1,
               help="Hooks of one operation that run at the same time (main hooks of "
                    "independent resources run in parallel)."),
    cfg.FloatOpt("progress_interval", default=1.0, min=0.05,
                 help="Seconds between two saves of a running operation's progress into "
                      "its record (what checkpoint-show, restore-show and karborctl "
                      "--wait show)."),
    cfg.FloatOpt("operation_poll_interval", default=0.2, min=0.01,
                 help="Seconds between checks of the operation queue by an idle worker."),
    cfg.IntOpt("operation_claim_timeout", default=60, min=5,
               help="An operation whose worker has not renewed its claim for this many "
                    "seconds is considered orphaned and taken over by another worker."),
    cfg.IntOpt("min_interval", default=60, min=1,
               help="Shortest allowed interval, in seconds, between two occurrences of "
                    "a time trigger."),
    cfg.IntOpt("min_window_time", default=60, min=1,
               help="Smallest allowed trigger window, in seconds."),
    cfg.IntOpt("max_window_time", default=86400, min=1,
               help="Largest allowed trigger window, in seconds."),
    cfg.IntOpt("default_window_time", default=900, min=1,
               help="Window of a trigger created without one (clamped to the allowed range)."),
    cfg.FloatOpt("trigger_poll_interval", default=2.0, min=0.05,
                 help="Seconds between two scans of the scheduled operations that are due."),
    cfg.IntOpt("max_occurrences_per_scan", default=1000, min=1,
               help="Most occurrences of one scheduled operation recorded in one scan "
                    "(after a long downtime the rest follow in the next scans)."),
    cfg.IntOpt("retained_operation_log_number", default=100, min=1,
               help="Scheduled-operation occurrence logs kept per operation."),
    cfg.StrOpt("time_format", default="calendar", choices=["calendar", "crontab"],
               help="Trigger pattern format used when a trigger does not name one."),
]

database_opts = [
    cfg.StrOpt("connection", secret=True,
               help="SQLAlchemy URL of the database. Defaults to SQLite in state_path."),
    cfg.BoolOpt("auto_migrate", default=True,
                help="Create or upgrade the schema when a service starts."),
]

coordination_opts = [
    cfg.StrOpt("backend_url", default="", secret=True,
               help="Redis URL of the TaskFlow jobboard that hands operations to the "
                    "protection workers, e.g. redis://:password@127.0.0.1:6379/0 "
                    "(rediss:// for TLS). Empty: workers find operations by polling the "
                    "database only. Either way the database is the record of what must run. "
                    "Give each Karbor deployment its own Redis database number."),
    cfg.FloatOpt("reconcile_interval", default=30.0, min=0.5,
                 help="With a jobboard, seconds between two scans of the database for "
                      "operations that are runnable but have no job on the board (Redis "
                      "lost it, or was down when the API posted it); they are posted "
                      "again."),
]

CONF.register_cli_opts(cli_opts)
CONF.register_opts(core_opts)
CONF.register_opts(database_opts, group="database")
CONF.register_opts(coordination_opts, group="coordination")


def list_opts():
    """Options for oslo-config-generator."""
    from karbor.common import keystone  # imports this module: only here, not at the top
    from karbor.services.protection.protectable_plugins import directory, postgresql

    return [("DEFAULT", cli_opts + core_opts), ("database", database_opts),
            ("coordination", coordination_opts), *keystone.list_opts(),
            ("local_directory", directory.local_directory_opts),
            ("postgresql", postgresql.postgresql_opts)]


def database_url() -> str:
    url = CONF.database.connection
    if url:
        # A plain postgresql:// means psycopg 3 to SQLAlchemy 2.1; the driver installed
        # with Karbor is psycopg2 (as oslo.db configurations name it).
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
        return url
    os.makedirs(CONF.state_path, exist_ok=True)
    return "sqlite:///" + os.path.join(CONF.state_path, "karbor.sqlite")


BUILTIN_PROVIDERS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "etc",
                                 "providers.d")


def provider_config_dir() -> str:
    """Where the provider files are. A config file of one's own does not lose the built-in
    providers: only an explicit ``provider_config_dir`` replaces them."""
    path = CONF.provider_config_dir
    if not path:
        return BUILTIN_PROVIDERS
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    if CONF.config_file:
        return os.path.join(os.path.dirname(os.path.abspath(CONF.config_file[0])), path)
    return os.path.abspath(path)


def parse_args(argv: list[str] | None, prog: str, description: str | None = None) -> None:
    CONF(argv, project="karbor", prog=prog, default_config_files=[], description=description)
