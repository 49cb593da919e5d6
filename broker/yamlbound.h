/* Bounds on the YAML kubefan reads (kubeconfig files and kubefand's
 * configuration), checked one libyaml event at a time before libyaml's
 * document loader sees the file. The loader's work grows with nesting
 * (100 000 '[' took it 30-40 s) and it looks each anchor and alias up in a
 * list of every anchor before it (90 000 anchors in 1 MiB took 15 s); a
 * kubeconfig needs 6 levels, kubefand's configuration 3, and neither any
 * anchor. */
#ifndef KF_YAMLBOUND_H
#define KF_YAMLBOUND_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#define KF_YAML_MAX_DEPTH   64
#define KF_YAML_MAX_ANCHORS 1024
#define KF_YAML_MAX_ALIASES 4096

struct kf_yaml_bound {
	int depth;
	int anchors;
	int aliases;
};

/* Counts ev against the bounds. Returns 0 while within them; otherwise
 * writes into msg which bound ev passed and returns -1. */
static inline int
kf_yaml_bound_step(struct kf_yaml_bound *b, const yaml_event_t *ev, char *msg,
		   size_t len)
{
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		b->aliases++;
		break;
	case YAML_SCALAR_EVENT:
		b->anchors += ev->data.scalar.anchor != NULL;
		break;
	case YAML_SEQUENCE_START_EVENT:
		b->anchors += ev->data.sequence_start.anchor != NULL;
		b->depth++;
		break;
	case YAML_MAPPING_START_EVENT:
		b->anchors += ev->data.mapping_start.anchor != NULL;
		b->depth++;
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		break;
	default:
		break;
	}
	if (b->anchors > KF_YAML_MAX_ANCHORS)
		snprintf(msg, len, "more than %d YAML anchors (the limit)",
			 KF_YAML_MAX_ANCHORS);
	else if (b->aliases > KF_YAML_MAX_ALIASES)
		snprintf(msg, len, "more than %d YAML aliases (the limit)",
			 KF_YAML_MAX_ALIASES);
	else if (b->depth > KF_YAML_MAX_DEPTH)
		snprintf(msg, len,
			 "YAML nested deeper than %d levels (the "
			 "limit)",
			 KF_YAML_MAX_DEPTH);
	else
		return 0;
	return -1;
}

/* Why libyaml's parser p failed on data[0..n), for an error message:
 * *kind is "YAML syntax error", or "invalid text" when the bytes are not
 * text libyaml reads (bad UTF-8, control characters); detail gets
 * libyaml's problem and its context; *line and *column (from 1) are
 * where. libyaml gives a reader error only as a byte offset, so its line
 * is counted here (at most n bytes). */
static inline void
kf_yaml_problem(const yaml_parser_t *p, const unsigned char *data, size_t n,
		const char **kind, char *detail, size_t len, size_t *line,
		size_t *column)
{
	const char *problem = p->problem ? p->problem : "malformed";

	*line = p->problem_mark.line + 1;
	*column = p->problem_mark.column + 1;
	*kind = "YAML syntax error";
	if (p->error == YAML_READER_ERROR) {
		*kind = "invalid text";
		*line = 1;
		*column = 1;
		for (size_t i = 0; i < p->problem_offset && i < n; i++) {
			*column = data[i] == '\n' ? 1 : *column + 1;
			*line += data[i] == '\n';
		}
	}
	snprintf(detail, len, "%s%s%s", problem, p->context ? " " : "",
		 p->context ? p->context : "");
}

/* A node that YAML reads as null: absent, or a plain (unquoted) empty,
 * "~" or null scalar. */
static inline bool
kf_yaml_is_null(const yaml_node_t *n)
{
	const char *v;

	if (n == NULL)
		return true;
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

#endif
