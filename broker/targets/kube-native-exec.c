/*
 * The API server's side of a native exec: the credential, the connection,
 * the pre-flight GETs (the pod; or the deployment or statefulset and then
 * its pods by selector), the exec request upgraded to a WebSocket on the
 * same connection, and wslay's callbacks that frame the stream
 * (channels: see kube-native.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "policy/audit.h"
#include "kube/kube-client.h"
#include "kube/kube-http.h"
#include "kube/kube-json.h"
#include "kube/kube.h"
#include "targets/kube-native-run.h"
#include "base/log.h"

/* ---- wslay callbacks ---- */

/* Read from the connection, unless output is waiting for the session. */
static ssize_t
kn_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct kn_run *run = user;
	long n;

	if (run->status_seen || kn_obuf_pending(&run->ob[0]) >= KN_OUT_HIGH ||
	    kn_obuf_pending(&run->ob[1]) >= KN_OUT_HIGH) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = kube_conn_read(run->conn, buf, len);
	if (n == -EAGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n <= 0) {
		run->stream_over = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	run->last_rx = uv_now(run->loop);
	return n;
}

/* Write to the connection. */
static ssize_t
kn_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct kn_run *run = user;
	long n = kube_conn_write(run->conn, data, len);

	if (n == -EAGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n < 0) {
		run->stream_over = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

/* Masking keys. */
static int
kn_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* A frame starts. */
static void
kn_ws_frame_start(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	struct kn_run *run = user;

	run->frame_op = arg->opcode;
	if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
		run->msg_first = true;
		run->channel = -1;
	}
}

/* Bytes of a frame: route data messages by their channel byte. */
static void
kn_ws_frame_chunk(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
	struct kn_run *run = user;
	const uint8_t *p = arg->data;
	size_t n = arg->data_length;

	if (run->frame_op != WSLAY_TEXT_FRAME && run->frame_op != WSLAY_BINARY_FRAME &&
	    run->frame_op != WSLAY_CONTINUATION_FRAME)
		return;
	if (run->msg_first && n > 0) {
		run->channel = p[0];
		run->msg_first = false;
		p++;
		n--;
	}
	if (n == 0 || run->status_seen)
		return;
	switch (run->channel) {
	case 1:
		kn_obuf_add(&run->ob[0], p, n);
		run->ready_due = true;
		break;
	case 2:
		kn_obuf_add(&run->ob[run->tty ? 0 : 1], p, n);
		run->ready_due = true;
		break;
	case 3:
		if (run->status.len + n <= KN_STATUS_MAX)
			buf_add(&run->status, p, n);
		break;
	default:
		break;
	}
}

/* A frame ended: a whole status message ends the exec. */
static void
kn_ws_frame_end(wslay_event_context_ptr ctx, void *user)
{
	struct kn_run *run = user;

	if (run->channel == 3 && run->status.len > 0 && !run->status_seen) {
		char msg[600];
		int code;

		/* A status message is one frame in practice; parse once it ends. */
		if (kube_json_exec_status(run->status.data, run->status.len, &code, msg,
		    sizeof msg) < 0)
			return;		/* not whole yet */
		run->status_seen = true;
		if (code >= 0) {
			run->exit_status = code;
		} else {
			snprintf(run->failure, sizeof run->failure, "%s", msg);
			run->exit_status = 1;
		}
	}
}

/* A whole message: a close frame ends the stream. */
static void
kn_ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
    void *user)
{
	struct kn_run *run = user;

	if (arg->opcode == WSLAY_CONNECTION_CLOSE)
		run->stream_over = true;
}

/* ---- the pre-flight and the upgrade ---- */

/* A credential is at hand (or not). */
static void
kn_auth_cb(void *arg, int err, const char *why)
{
	struct kn_run *run = arg;

	run->auth_pending = false;
	if (run->stage >= KN_ENDING)
		return;
	if (err < 0) {
		kn_fail(run, "cannot authenticate to cluster %s: %s", run->cluster,
		    why != NULL && *why != '\0' ? why : strerror(-err));
	} else {
		run->stage = KN_CONNECT;
		kn_step(run);
	}
	kn_ready(run);
}

/* Open a connection when there is none that can carry a request. */
static bool
kn_need_conn(struct kn_run *run)
{
	int r;

	if (run->conn != NULL && kube_conn_reusable(run->conn))
		return false;
	if (run->conn != NULL) {
		kube_conn_close(run->conn);
		run->conn = NULL;
	}
	run->stage = KN_CONNECT;
	r = kube_client_conn(run->cl, run->loop, kn_conn_cb, run, &run->conn);
	if (r == 1) {
		run->reused = true;	/* opened ahead: ready now */
		return false;
	}
	run->reused = false;
	if (r < 0) {
		run->conn = NULL;
		kn_fail(run, "cannot reach the API server of cluster %s: %s", run->cluster,
		    strerror(-r));
	}
	return true;
}

/* Send a request on the connection. */
static void
kn_send(struct kn_run *run, const char *path, const char *extra, enum kn_stage stage)
{
	struct kube_ident id = { run->as_user, run->as_groups };
	struct buf req = { 0 };
	int r;

	if ((r = kube_client_request(run->cl, "GET", path, &id, extra, &req)) < 0 ||
	    (r = kube_conn_request(run->conn, req.data, req.len, false)) < 0) {
		buf_free(&req);
		kn_fail(run, "cannot send a request to cluster %s: %s", run->cluster,
		    strerror(-r));
		return;
	}
	buf_free(&req);
	run->stage = stage;
}

/* The exec request: the command as repeated query parameters. */
static void
kn_send_exec(struct kn_run *run)
{
	struct buf path = { 0 };
	char key[25], extra[300];
	char **a;

	if (kube_http_ws_key(key, run->accept) < 0) {
		kn_fail(run, "cannot make a WebSocket key");
		return;
	}
	/* The namespace, pod and container are checked DNS names: nothing to escape. */
	buf_printf(&path, "/api/v1/namespaces/%s/pods/%s/exec?container=%s&stdin=true&"
	    "stdout=true&stderr=%s&tty=%s", run->ns, run->pod, run->use_container,
	    run->tty ? "false" : "true", run->tty ? "true" : "false");
	for (a = run->argv; a != NULL && *a != NULL; a++) {
		buf_str(&path, "&command=");
		kube_http_escape(&path, *a);
	}
	if (path.oom) {
		buf_free(&path);
		kn_fail(run, "out of memory");
		return;
	}
	snprintf(extra, sizeof extra, "Connection: Upgrade\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n", key);
	kn_send(run, path.data, extra, KN_UPGRADE);
	buf_free(&path);
}

/* The failure line for a refused request, from its Status body. */
static void
kn_http_failure(struct kn_run *run, struct kube_http_resp *resp)
{
	char msg[600];

	if (resp->status == 401) {
		kn_fail(run, "the API server of cluster %s refused the broker's credentials "
		    "(401 Unauthorized)", run->cluster);
		return;
	}
	if (kube_json_status_message(resp->body.data, resp->body.len, msg, sizeof msg) == 0) {
		kn_fail(run, "%s", msg);
		return;
	}
	kn_fail(run, "the API server of cluster %s answered %d", run->cluster, resp->status);
}

/* Check the pod and settle the container (as the kubectl helper does). */
static bool
kn_check_pod(struct kn_run *run, const struct kube_pod *pod)
{
	char list[512] = "";
	char *const *c;

	/*
	 * Names from the API server go into the exec request's URL: check them
	 * as the ones that go in, so that none can add a path segment or a
	 * query parameter (or be cut to fit run->pod).
	 */
	if (pod->name == NULL || !kube_subdomain_ok(pod->name)) {
		kn_fail(run, "the API server returned a pod whose name is not a valid name");
		return false;
	}
	for (c = pod->containers; c != NULL && *c != NULL; c++) {
		if (!kube_label_ok(*c)) {
			kn_fail(run, "the API server returned a container whose name is not a "
			    "valid name in pod %s", pod->name);
			return false;
		}
	}
	snprintf(run->pod, sizeof run->pod, "%s", pod->name);
	if (strcmp(pod->phase, "Succeeded") == 0 || strcmp(pod->phase, "Failed") == 0) {
		kn_fail(run, "cannot exec into a completed pod (phase %s)", pod->phase);
		return false;
	}
	if (pod->deleting) {
		kn_fail(run, "pod %s is terminating", pod->name);
		return false;
	}
	if (strcmp(pod->phase, "Running") != 0) {
		kn_fail(run, "pod %s is not running (phase %s)", pod->name, pod->phase);
		return false;
	}
	if (pod->containers == NULL || pod->containers[0] == NULL) {
		kn_fail(run, "pod %s has no containers", pod->name);
		return false;
	}
	if (run->container != NULL) {
		if (!kube_pod_has_container(pod, run->container)) {
			for (c = pod->containers; *c != NULL; c++) {
				if (c != pod->containers)
					strncat(list, ", ", sizeof list - strlen(list) - 1);
				strncat(list, *c, sizeof list - strlen(list) - 1);
			}
			kn_fail(run, "container %s is not in pod %s (containers: %s)",
			    run->container, pod->name, list);
			return false;
		}
		snprintf(run->use_container, sizeof run->use_container, "%s", run->container);
	} else if (pod->default_container != NULL &&
	    kube_pod_has_container(pod, pod->default_container)) {
		snprintf(run->use_container, sizeof run->use_container, "%s",
		    pod->default_container);
	} else {
		snprintf(run->use_container, sizeof run->use_container, "%s", pod->containers[0]);
	}
	return true;
}

/* A pre-flight response arrived. */
static void
kn_got(struct kn_run *run, struct kube_http_resp *resp)
{
	struct kube_pod pod, *pods = NULL;
	struct buf path = { 0 };
	char *sel = NULL;
	size_t n = 0, i;

	if (resp->status != 200) {
		kn_http_failure(run, resp);
		return;
	}
	switch (run->get) {
	case KN_GET_POD:
		if (kube_pod_parse(resp->body.data, resp->body.len, &pod) < 0) {
			kn_fail(run, "the API server of cluster %s sent something that is not a pod",
			    run->cluster);
			return;
		}
		if (kn_check_pod(run, &pod)) {
			kube_pod_clear(&pod);
			run->stage = KN_UPGRADE;
			kn_step(run);
			return;
		}
		kube_pod_clear(&pod);
		return;
	case KN_GET_WORKLOAD:
		if (kube_selector_parse(resp->body.data, resp->body.len, &sel) < 0) {
			kn_fail(run, "the %s has no usable selector", run->kind == KUBE_DEPLOY ?
			    "deployment" : "statefulset");
			return;
		}
		if (kube_http_escape(&path, sel) < 0) {
			free(sel);
			kn_fail(run, "out of memory");
			return;
		}
		free(sel);
		sel = NULL;
		if (asprintf(&run->pods_path, "/api/v1/namespaces/%s/pods?labelSelector=%s",
		    run->ns, path.data) < 0) {
			run->pods_path = NULL;
			buf_free(&path);
			kn_fail(run, "out of memory");
			return;
		}
		buf_free(&path);
		run->get = KN_GET_PODS;
		run->stage = KN_GET;
		kn_step(run);
		return;
	case KN_GET_PODS:
		if (kube_pods_parse(resp->body.data, resp->body.len, &pods, &n) < 0) {
			kn_fail(run, "the API server of cluster %s sent something that is not a "
			    "pod list", run->cluster);
			return;
		}
		for (i = 0; i < n; i++) {
			if (strcmp(pods[i].phase, "Running") == 0 && !pods[i].deleting)
				break;
		}
		if (i == n) {
			kube_pods_free(pods, n);
			kn_fail(run, "the %s has no running pod", run->kind == KUBE_DEPLOY ?
			    "deployment" : "statefulset");
			return;
		}
		if (kn_check_pod(run, &pods[i])) {
			kube_pods_free(pods, n);
			run->stage = KN_UPGRADE;
			kn_step(run);
			return;
		}
		kube_pods_free(pods, n);
		return;
	}
}

/* The upgrade was answered: start the stream. */
static void
kn_upgraded(struct kn_run *run, struct kube_http_resp *resp)
{
	struct wslay_event_callbacks cb = {
		.recv_callback = kn_ws_recv,
		.send_callback = kn_ws_send,
		.genmask_callback = kn_ws_genmask,
		.on_frame_recv_start_callback = kn_ws_frame_start,
		.on_frame_recv_chunk_callback = kn_ws_frame_chunk,
		.on_frame_recv_end_callback = kn_ws_frame_end,
		.on_msg_recv_callback = kn_ws_msg,
	};

	if (resp->status != 101) {
		kn_http_failure(run, resp);
		return;
	}
	if (resp->upgrade == NULL || strcasecmp(resp->upgrade, "websocket") != 0 ||
	    resp->accept == NULL || strcmp(resp->accept, run->accept) != 0) {
		kn_fail(run, "the API server of cluster %s answered the exec with a bad "
		    "WebSocket handshake", run->cluster);
		return;
	}
	if (resp->protocol != NULL && strcmp(resp->protocol, "v5.channel.k8s.io") == 0) {
		run->v5 = true;
	} else if (resp->protocol != NULL && strcmp(resp->protocol, "v4.channel.k8s.io") == 0) {
		run->v5 = false;
	} else {
		kn_fail(run, "the API server of cluster %s chose no exec protocol podgate speaks "
		    "(%s)", run->cluster, resp->protocol != NULL ? resp->protocol : "none");
		return;
	}
	if (wslay_event_context_client_init(&run->ws, &cb, run) != 0) {
		run->ws = NULL;
		kn_fail(run, "out of memory");
		return;
	}
	wslay_event_config_set_no_buffering(run->ws, 1);
	wslay_event_config_set_max_recv_msg_length(run->ws, KN_MSG_MAX);
	run->stage = KN_STREAM;
	run->last_rx = uv_now(run->loop);
	uv_timer_stop(&run->timer);
	uv_timer_start(&run->timer, kn_timer_cb, (uint64_t)run->keepalive * 1000,
	    (uint64_t)run->keepalive * 1000);
	if (run->tty)
		run->proc.ops->resize(&run->proc, run->cols, run->rows);
	kn_pump(run);
}

/* What the connection's news means for the run. */
static void
kn_conn_event(struct kn_run *run, struct kube_conn *kc, enum kube_conn_event ev, int err)
{
	struct kube_http_resp *resp;

	if (run->stage >= KN_ENDING)
		return;
	if (ev == KUBE_CONN_IO) {
		kn_pump(run);
		return;
	}
	if (err < 0 && ev == KUBE_CONN_RESPONSE && run->reused && !run->reconnected) {
		/* The server closed the idle connection as we used it: once more, afresh. */
		run->reconnected = true;
		kube_conn_close(run->conn);
		run->conn = NULL;
		if (run->stage == KN_GET)
			run->stage = KN_CONNECT;
		kn_step(run);
		return;
	}
	if (err < 0) {
		if (ev == KUBE_CONN_OPEN)
			kn_fail(run, "cannot reach the API server of cluster %s: %s", run->cluster,
			    kube_conn_error(kc));
		else
			kn_fail(run, "cluster %s: %s", run->cluster, kube_conn_error(kc));
		return;
	}
	if (ev == KUBE_CONN_OPEN) {
		kn_step(run);
		return;
	}
	resp = kube_conn_response(kc);
	if (resp->status == 401 && !run->retried && kube_client_has_plugin(run->cl)) {
		/* The plugin's credential was refused: run it again, once. */
		run->retried = true;
		kube_client_unauthorized(run->cl);
		kube_conn_close(run->conn);
		run->conn = NULL;
		run->stage = KN_AUTH;
		kn_step(run);
		return;
	}
	if (run->stage == KN_UPGRADE)
		kn_upgraded(run, resp);
	else
		kn_got(run, resp);
}

/* The connection has news; then the session hears of what it brought. */
void
kn_conn_cb(struct kube_conn *kc, enum kube_conn_event ev, int err, void *arg)
{
	struct kn_run *run = arg;

	kn_conn_event(run, kc, ev, err);
	kn_ready(run);
}

/* Take the next step of the pre-flight. */
void
kn_step(struct kn_run *run)
{
	char *path = NULL;
	int r;

	switch (run->stage) {
	case KN_AUTH:
		run->auth_pending = true;
		if ((r = kube_client_auth(run->cl, run->loop, kn_auth_cb, run)) < 0) {
			run->auth_pending = false;
			kn_fail(run, "cannot authenticate to cluster %s: %s", run->cluster,
			    strerror(-r));
		}
		return;
	case KN_CONNECT:
	case KN_GET:
		if (kn_need_conn(run))
			return;
		if (run->get == KN_GET_POD)
			r = asprintf(&path, "/api/v1/namespaces/%s/pods/%s", run->ns, run->name);
		else if (run->get == KN_GET_WORKLOAD)
			r = asprintf(&path, "/apis/apps/v1/namespaces/%s/%s/%s", run->ns,
			    run->kind == KUBE_DEPLOY ? "deployments" : "statefulsets", run->name);
		else
			r = (path = strdup(run->pods_path)) == NULL ? -1 : 0;
		if (r < 0) {
			kn_fail(run, "out of memory");
			return;
		}
		kn_send(run, path, "Accept: application/json\r\n", KN_GET);
		free(path);
		return;
	case KN_UPGRADE:
		if (kn_need_conn(run)) {
			if (run->stage == KN_CONNECT)
				run->stage = KN_UPGRADE;	/* connect, then come back here */
			return;
		}
		kn_send_exec(run);
		return;
	default:
		return;
	}
}
