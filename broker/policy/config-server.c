/*
 * The configuration's server keys that need more than a table row: the
 * addresses to listen on, the replicas to reach (peers) and the delay
 * after a failed authentication.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "policy/config-parse.h"

/*
 * An address to listen on: "HOST:PORT" with a numeric IPv4 host or
 * "[IPV6]:PORT". Host names are refused: the broker binds one address and
 * must not depend on DNS to decide which.
 */
void
config_addr(struct config_parse *p, yaml_node_t *n, const char *key, char **hostp,
    uint16_t *portp)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *v, *colon, *s;
	char host[INET6_ADDRSTRLEN + 1], *copy;
	size_t hlen;
	unsigned long port = 0;
	int family = AF_INET;

	if ((v = config_scalar(p, n, key)) == NULL)
		return;
	if (*v == '[') {
		family = AF_INET6;
		if ((s = strchr(v, ']')) == NULL || s[1] != ':')
			goto bad;
		colon = s + 1;
		v++;
		hlen = (size_t)(s - v);
	} else {
		if ((colon = strrchr(v, ':')) == NULL)
			goto bad;
		hlen = (size_t)(colon - v);
		if (memchr(v, ':', hlen) != NULL) {
			config_error(p, n, "%s: write an IPv6 address in brackets, like "
			    "[::1]:2222", key);
			return;
		}
	}
	if (hlen == 0 || hlen >= sizeof host)
		goto bad;
	memcpy(host, v, hlen);
	host[hlen] = '\0';
	if (inet_pton(family, host, addr) != 1) {
		config_error(p, n, "%s: \"%s\" is not a numeric %s address", key, host,
		    family == AF_INET ? "IPv4" : "IPv6");
		return;
	}
	for (s = colon + 1; *s >= '0' && *s <= '9' && port <= 65535; s++)
		port = port * 10 + (unsigned long)(*s - '0');
	if (s == colon + 1 || *s != '\0' || port == 0 || port > 65535) {
		config_error(p, n, "%s: port must be a number from 1 to 65535", key);
		return;
	}
	if ((copy = config_strdup(p, host)) == NULL)
		return;
	free(*hostp);
	*hostp = copy;
	*portp = (uint16_t)port;
	return;
bad:
	config_error(p, n, "%s must be HOST:PORT, like 127.0.0.1:2222 or [::1]:2222", key);
}

/* Whether s is a peer address: HOST:PORT with a DNS name or IPv4 address. */
static int
config_peer_ok(const char *s)
{
	const char *colon = strrchr(s, ':'), *q;
	unsigned long port = 0;

	if (colon == NULL || colon == s || colon - s > 253 || colon[1] == '\0')
		return 0;
	for (q = s; q < colon; q++) {
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
		    *q) == NULL)
			return 0;
	}
	for (q = colon + 1; *q >= '0' && *q <= '9' && port <= 65535; q++)
		port = port * 10 + (unsigned long)(*q - '0');
	return *q == '\0' && port >= 1 && port <= 65535 && *s != '-' && *s != '.';
}

/* peers: a list of HOST:PORT, or {dns: NAME} (a headless Service) */
void
config_parse_peers(struct config_parse *p, yaml_node_t *n, void *obj)
{
	struct config *c = obj;
	yaml_node_pair_t *pair;
	yaml_node_t *k, *v;

	if (n->type == YAML_SEQUENCE_NODE) {
		config_set_list(p, n, "peers", config_peer_ok, "HOST:PORT", &c->peers, &c->npeers);
		if (c->npeers == 0)
			config_error(p, n, "peers: the list is empty");
		return;
	}
	if (n->type != YAML_MAPPING_NODE || n->data.mapping.pairs.top -
	    n->data.mapping.pairs.start != 1) {
		config_error(p, n, "peers must be a list of HOST:PORT or {dns: NAME}");
		return;
	}
	pair = n->data.mapping.pairs.start;
	k = config_node(p, pair->key);
	v = config_node(p, pair->value);
	if (k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, "dns") != 0) {
		config_error(p, k, "peers must be a list of HOST:PORT or {dns: NAME}");
		return;
	}
	config_set_string(p, v, "peers.dns", &c->peers_dns);
	if (c->peers_dns != NULL && (strlen(c->peers_dns) > 253 || c->peers_dns[0] == '-' ||
	    strspn(c->peers_dns, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(c->peers_dns)))
		config_error(p, v, "peers.dns: \"%s\" is not a DNS name", c->peers_dns);
}

/* auth_failure_delay: seconds ("2s") or milliseconds ("500ms"), at most 60 s. */
void
config_parse_auth_failure_delay(struct config_parse *p, yaml_node_t *n, void *obj)
{
	const char *v = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
	size_t len = v != NULL ? strlen(v) : 0;
	unsigned long long ms;

	if (len > 2 && strcmp(v + len - 2, "ms") == 0 && len - 2 <= 5 &&
	    strspn(v, "0123456789") == len - 2) {
		ms = strtoull(v, NULL, 10);
		if (ms > 60000) {
			config_error(p, n, "auth_failure_delay must be from 0 to 60s");
			return;
		}
		((struct config *)obj)->auth_failure_delay_ms = (unsigned)ms;
		return;
	}
	if (config_duration(p, n, "auth_failure_delay", 0, 60, &ms) == 0)
		((struct config *)obj)->auth_failure_delay_ms = (unsigned)ms * 1000;
}
