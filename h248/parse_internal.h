/* Shared between the parser's files: parser state and the grammar entry points. */
#ifndef IMS_AGW_H248_PARSE_INTERNAL_H
#define IMS_AGW_H248_PARSE_INTERNAL_H

#include "h248.h"
#include "lex.h"

struct h248_parser {
    struct h248_lex lx;
    struct h248_message *msg;
};

/* Zeroed arena memory; on failure records a 510 error and returns NULL. */
void *h248_parser_alloc(struct h248_parser *ps, size_t size);

bool h248_is_name(struct h248_str s);
bool h248_is_pkgd_name(struct h248_str s);
bool h248_split_timestamp(struct h248_str word, char date[9], char time[9]);

int h248_parse_mid(struct h248_parser *ps, struct h248_mid *mid, const char *what);
int h248_parse_termination_id(struct h248_parser *ps, struct h248_str *id);

/* "{" property *("," property) "}" appended to *list. */
int h248_parse_property_list(struct h248_parser *ps, struct h248_property **list,
                             bool value_required, const char *what);

/* The part after the Error token: EQUAL ErrorCode LBRKT [quotedString] RBRKT. */
int h248_parse_error_descriptor(struct h248_parser *ps, struct h248_error_desc *err);

/* "{" descriptor *("," descriptor) "}" of a command request or reply. */
int h248_parse_command_body(struct h248_parser *ps, struct h248_command *cmd, bool reply);

#endif
