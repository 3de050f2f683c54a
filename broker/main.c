/*
 * podgate-broker: the SSH-speaking access broker and session recorder.
 * Runs in the foreground and logs to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config.h"
#include "ssh/demo.h"
#include "kube/kube-exec.h"
#include "kube/kube-pick.h"
#include "rec.h"
#include "ssh/server.h"

#define MAIN_EXIT_USAGE SERVER_EXIT_CONFIG	/* one status: the command line or config is wrong */

static const char main_usage[] =
    "usage: podgate-broker --config FILE [--listen HOST:PORT] [--debug]\n"
    "       podgate-broker --demo DIR [--listen HOST:PORT] [--debug]\n"
    "       podgate-broker --check-config FILE\n"
    "       podgate-broker (--config FILE | --demo DIR) --print-signing-key\n"
    "       podgate-broker --version | --help\n"
    "\n"
    "  --config FILE        run with the configuration in FILE (YAML)\n"
    "  --demo DIR           run the embedded demo configuration with state in DIR\n"
    "  --check-config FILE  validate FILE: exit 0, or print each error and exit 2\n"
    "  --listen HOST:PORT   listen there instead ([::1]:2222 for IPv6)\n"
    "  --debug              verbose logs, libssh's included\n"
    "\n"
    "Signals: SIGHUP reloads users, keys and rules; SIGTERM or SIGINT stop after\n"
    "live sessions end (at most shutdown_grace seconds).\n"
    "\n"
    "Exit status: 0 stopped cleanly or the check passed; 1 could not start or\n"
    "run; 2 the command line or the configuration is wrong (also at start).\n";

/* Print a one-line usage error and return the usage exit status. */
static int
main_bad_usage(const char *msg)
{
	fprintf(stderr, "podgate-broker: %s (try --help)\n", msg);
	return MAIN_EXIT_USAGE;
}

/* Validate a configuration file: its errors go to stderr with their lines. */
static int
main_check_config(const char *path)
{
	struct config *c = NULL;

	if (config_load(path, stderr, &c) < 0)
		return MAIN_EXIT_USAGE;
	printf("%s: ok (%zu users, %zu rules)\n", path, c->nusers, c->nrules);
	config_unref(c);
	return 0;
}

/*
 * Print the public half of the recording signing key (generated when
 * missing under --demo or generate_keys: true), in the PEM form
 * `podgate-player verify --key` reads.
 */
static int
main_print_signing_key(const struct server_opts *o)
{
	struct config *c = NULL;
	struct rec_key *k = NULL;
	char *demo = NULL, *identity = NULL;
	int r;

	if (o->config_path != NULL)
		r = config_load(o->config_path, stderr, &c);
	else if ((r = demo_config(o->demo_dir, NULL, &demo, &identity)) == 0)
		r = config_load_string("demo", demo, strlen(demo), stderr, &c);
	free(demo);
	free(identity);
	if (r < 0)
		return MAIN_EXIT_USAGE;
	if ((r = server_signing_key(c, &k)) < 0) {
		r = r == -ENOENT && !c->generate_keys ? SERVER_EXIT_CONFIG : SERVER_EXIT_FAILURE;
		config_unref(c);
		return r;
	}
	fprintf(stderr, "%s\n", rec_key_fingerprint(k));
	r = rec_key_write_public(k, stdout);
	rec_key_free(k);
	config_unref(c);
	return r < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_CONFIG = 256, OPT_CHECK, OPT_DEMO, OPT_LISTEN, OPT_VERSION, OPT_HELP,
	    OPT_DEBUG, OPT_PRINT_KEY };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "check-config", required_argument, NULL, OPT_CHECK },
		{ "demo", required_argument, NULL, OPT_DEMO },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "debug", no_argument, NULL, OPT_DEBUG },
		{ "print-signing-key", no_argument, NULL, OPT_PRINT_KEY },
		{ NULL, 0, NULL, 0 },
	};
	struct server_opts o;
	const char *check = NULL;
	bool print_key = false;
	char *host = NULL;
	uint16_t port;
	int c, modes = 0;

	/* The kubernetes target's helper (not for users; see kube-exec.c). */
	if (argc > 1 && strcmp(argv[1], "--kube-exec") == 0)
		return kube_exec_main(argc - 1, argv + 1);
	/* The pod picker a session runs (not for users; see kube-pick.c). */
	if (argc > 1 && strcmp(argv[1], "--kube-pick") == 0)
		return kube_pick_main(argc - 1, argv + 1);

	memset(&o, 0, sizeof o);
	o.argv0 = argv[0];
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG:
			o.config_path = optarg;
			modes++;
			break;
		case OPT_CHECK:
			check = optarg;
			modes++;
			break;
		case OPT_DEMO:
			o.demo_dir = optarg;
			modes++;
			break;
		case OPT_LISTEN:
			o.listen = optarg;
			break;
		case OPT_DEBUG:
			o.debug = true;
			break;
		case OPT_PRINT_KEY:
			print_key = true;
			break;
		case OPT_VERSION:
			printf("podgate-broker %s\n", PODGATE_VERSION);
			return 0;
		case OPT_HELP:
			fputs(main_usage, stdout);
			return 0;
		case ':':
			return main_bad_usage("an option is missing its argument");
		default:
			return main_bad_usage("unknown option");
		}
	}
	if (optind < argc)
		return main_bad_usage("unexpected argument");
	if (modes == 0)
		return main_bad_usage("give one of --config FILE, --demo DIR or --check-config FILE");
	if (modes > 1)
		return main_bad_usage("--config, --demo and --check-config exclude each other");
	if (check != NULL)
		return main_check_config(check);
	if (print_key)
		return main_print_signing_key(&o);
	if ((o.config_path != NULL && *o.config_path == '\0') ||
	    (o.demo_dir != NULL && *o.demo_dir == '\0'))
		return main_bad_usage("empty path");
	if (o.listen != NULL) {
		if (server_parse_listen(o.listen, &host, &port) < 0)
			return main_bad_usage("--listen takes HOST:PORT with a numeric address, "
			    "like 127.0.0.1:2222 or [::1]:2222");
		free(host);
	}
	return server_run(&o);
}
