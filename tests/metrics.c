/*
 * metrics.c - the Prometheus exposition text: every sample line parses as
 * `name{labels} value`, is tierkv_-prefixed, follows its own HELP and TYPE
 * lines, counters end in _total, and the values match tkv_stats.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tierkv.h"

/* Parses one sample line; returns 0 and the name (without labels). */
static int parse_sample(const char *line, char *name, size_t nlen, unsigned long long *value)
{
	size_t i = 0;
	while (line[i] && (isalnum((unsigned char)line[i]) || line[i] == '_') && i + 1 < nlen) {
		name[i] = line[i];
		i++;
	}
	name[i] = '\0';
	if (i == 0)
		return -1;
	const char *p = line + i;
	if (*p == '{') {
		const char *close = strchr(p, '}');
		if (!close || !strstr(p, "=\""))
			return -1;
		p = close + 1;
	}
	if (*p != ' ')
		return -1;
	char *end;
	*value = strtoull(p + 1, &end, 10);
	return (end == p + 1 || *end != '\0') ? -1 : 0;
}

static void check_text(char *text)
{
	char help_for[128] = "", type_for[128] = "", type[16] = "";
	int samples = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (sscanf(line, "# HELP %127s", help_for) == 1)
			continue;
		if (sscanf(line, "# TYPE %127s %15s", type_for, type) == 2) {
			cr_assert_str_eq(type_for, help_for, "TYPE follows its HELP");
			cr_assert(!strcmp(type, "counter") || !strcmp(type, "gauge"), "%s", type);
			continue;
		}
		char name[128];
		unsigned long long v;
		cr_assert_eq(parse_sample(line, name, sizeof(name), &v), 0, "bad line '%s'", line);
		cr_assert_str_eq(name, type_for, "sample %s under TYPE %s", name, type_for);
		cr_assert(!strncmp(name, "tierkv_", 7));
		if (!strcmp(type, "counter"))
			cr_assert(strstr(name, "_total"), "counter %s must end in _total", name);
		samples++;
	}
	cr_assert_gt(samples, 10);
}

Test(metrics, prometheus_text_parses_and_matches_stats)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = 2;
	c.n_kv_heads = 1;
	c.head_dim = 16;
	c.hot_bytes = 1 << 20;
	c.n_workers = 2;
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_seq_open(rt, 1), 0);
	float k[3 * 16] = {0}, v[3 * 16] = {0};
	for (uint32_t l = 0; l < 2; l++)
		cr_assert_eq(tkv_store(rt, 1, l, 0, 3, k, v, 0, NULL), 0);
	cr_assert_eq(tkv_seq_sync(rt, 1), 0);

	int64_t need = tkv_metrics_prometheus(rt, NULL, 0);
	cr_assert_gt(need, 0);
	char small[32];
	cr_assert_eq(tkv_metrics_prometheus(rt, small, sizeof(small)), need, "size is reported");
	cr_assert_eq(strlen(small), sizeof(small) - 1, "cut short, still terminated");
	char *text = malloc((size_t)need + 1);
	cr_assert_eq(tkv_metrics_prometheus(rt, text, (size_t)need + 1), need);
	cr_assert(strstr(text, "tierkv_tokens_stored_total{worker=\"0\"} 3\n"), "%s", text);
	cr_assert(strstr(text, "tierkv_tokens_stored_total{worker=\"1\"} 3\n"), "%s", text);
	cr_assert(strstr(text, "tierkv_open_sequences 1\n"), "%s", text);
	cr_assert(strstr(text, "tierkv_hot_bytes_used 4096\n"), "one 2 KiB block per layer: %s", text);
	check_text(text);
	free(text);
	cr_assert_eq(tkv_metrics_prometheus(NULL, NULL, 0), -EINVAL);
	tkv_close(rt);
}
