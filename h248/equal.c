/* Structural equality of two messages: the round-trip check parse(encode(x)) == x.
 * A field is compared only where it has meaning: not behind a false has_* flag, not in a
 * union member or an event-parameter / transaction kind that does not use it. */
#include "h248.h"

#include <string.h>

/* Both NULL: equal; one NULL: not; else compare. */
#define BOTH_OR_NEITHER(a, b)                                                                      \
    do {                                                                                           \
        if ((a) == NULL || (b) == NULL)                                                            \
            return (a) == (b);                                                                     \
    } while (0)

/* Lists are equal when they have the same length and equal elements in order. */
#define LIST_EQUAL(type, fn, a, b)                                                                 \
    do {                                                                                           \
        const type *x_ = (a), *y_ = (b);                                                           \
        for (; x_ != NULL && y_ != NULL; x_ = x_->next, y_ = y_->next)                             \
            if (!fn(x_, y_))                                                                       \
                return false;                                                                      \
        return x_ == NULL && y_ == NULL;                                                           \
    } while (0)

static bool str_eq(const struct h248_str *a, const struct h248_str *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static bool mid_eq(const struct h248_mid *a, const struct h248_mid *b)
{
    return a->kind == b->kind && str_eq(&a->text, &b->text) && a->has_port == b->has_port &&
           (!a->has_port || a->port == b->port);
}

static bool value_eq(const struct h248_value *a, const struct h248_value *b)
{
    return a->quoted == b->quoted && str_eq(&a->text, &b->text);
}

static bool values_eq(const struct h248_value *a, const struct h248_value *b)
{
    LIST_EQUAL(struct h248_value, value_eq, a, b);
}

static bool property_eq(const struct h248_property *a, const struct h248_property *b)
{
    if (!str_eq(&a->name, &b->name) || a->has_value != b->has_value)
        return false;
    if (!a->has_value)
        return true;
    return a->value.relation == b->value.relation && a->value.shape == b->value.shape &&
           values_eq(a->value.values, b->value.values);
}

static bool properties_eq(const struct h248_property *a, const struct h248_property *b)
{
    LIST_EQUAL(struct h248_property, property_eq, a, b);
}

static bool error_eq(const struct h248_error_desc *a, const struct h248_error_desc *b)
{
    BOTH_OR_NEITHER(a, b);
    return a->code == b->code && a->has_text == b->has_text &&
           (!a->has_text || str_eq(&a->text, &b->text));
}

static bool audit_item_eq(const struct h248_audit_item *a, const struct h248_audit_item *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == H248_AUDIT_TOKEN)
        return a->token == b->token;
    return str_eq(&a->text, &b->text);
}

static bool audit_items_eq(const struct h248_audit_item *a, const struct h248_audit_item *b)
{
    LIST_EQUAL(struct h248_audit_item, audit_item_eq, a, b);
}

static bool statistics_eq(const struct h248_statistics *a, const struct h248_statistics *b)
{
    BOTH_OR_NEITHER(a, b);
    return properties_eq(a->items, b->items);
}

static bool local_control_eq(const struct h248_local_control *a, const struct h248_local_control *b)
{
    BOTH_OR_NEITHER(a, b);
    return a->mode == b->mode && a->reserved_value == b->reserved_value &&
           a->reserved_group == b->reserved_group && properties_eq(a->properties, b->properties);
}

static bool stream_parms_eq(const struct h248_stream_parms *a, const struct h248_stream_parms *b)
{
    return local_control_eq(a->local_control, b->local_control) && a->has_local == b->has_local &&
           (!a->has_local || str_eq(&a->local, &b->local)) && a->has_remote == b->has_remote &&
           (!a->has_remote || str_eq(&a->remote, &b->remote)) &&
           statistics_eq(a->statistics, b->statistics);
}

static bool stream_eq(const struct h248_stream *a, const struct h248_stream *b)
{
    return a->id == b->id && stream_parms_eq(&a->parms, &b->parms);
}

static bool streams_eq(const struct h248_stream *a, const struct h248_stream *b)
{
    LIST_EQUAL(struct h248_stream, stream_eq, a, b);
}

static bool termination_state_eq(const struct h248_termination_state *a,
                                 const struct h248_termination_state *b)
{
    BOTH_OR_NEITHER(a, b);
    return a->service_state == b->service_state && a->buffer_control == b->buffer_control &&
           properties_eq(a->properties, b->properties);
}

static bool media_eq(const struct h248_media *a, const struct h248_media *b)
{
    return termination_state_eq(a->termination_state, b->termination_state) &&
           a->has_direct_parms == b->has_direct_parms && stream_parms_eq(&a->direct, &b->direct) &&
           streams_eq(a->streams, b->streams);
}

static bool signals_eq(const struct h248_signals *a, const struct h248_signals *b);
static bool events_eq(const struct h248_events *a, const struct h248_events *b);

static bool event_parm_eq(const struct h248_event_parm *a, const struct h248_event_parm *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case H248_EVPARM_OTHER:
        return property_eq(&a->other, &b->other);
    case H248_EVPARM_STREAM:
        return a->stream == b->stream;
    case H248_EVPARM_EMBED:
    case H248_EVPARM_NOTIFY_REGULATED:
        return signals_eq(a->embed_signals, b->embed_signals) &&
               events_eq(a->embed_events, b->embed_events);
    case H248_EVPARM_DIGIT_MAP:
        return a->digit_map_is_value == b->digit_map_is_value &&
               str_eq(&a->digit_map, &b->digit_map);
    default:
        return true;
    }
}

static bool event_parms_eq(const struct h248_event_parm *a, const struct h248_event_parm *b)
{
    LIST_EQUAL(struct h248_event_parm, event_parm_eq, a, b);
}

static bool requested_event_eq(const struct h248_requested_event *a,
                               const struct h248_requested_event *b)
{
    return str_eq(&a->name, &b->name) && event_parms_eq(a->parms, b->parms);
}

static bool requested_events_eq(const struct h248_requested_event *a,
                                const struct h248_requested_event *b)
{
    LIST_EQUAL(struct h248_requested_event, requested_event_eq, a, b);
}

static bool events_eq(const struct h248_events *a, const struct h248_events *b)
{
    BOTH_OR_NEITHER(a, b);
    return a->has_request_id == b->has_request_id &&
           (!a->has_request_id || a->request_id == b->request_id) &&
           requested_events_eq(a->events, b->events);
}

static bool signal_request_eq(const struct h248_signal_request *a,
                              const struct h248_signal_request *b)
{
    return str_eq(&a->name, &b->name) && a->has_stream == b->has_stream &&
           (!a->has_stream || a->stream == b->stream) && a->type == b->type &&
           a->has_duration == b->has_duration && (!a->has_duration || a->duration == b->duration) &&
           a->notify_completion == b->notify_completion && a->keep_active == b->keep_active &&
           a->direction == b->direction && a->has_request_id == b->has_request_id &&
           (!a->has_request_id || a->request_id == b->request_id) &&
           a->has_intersignal_delay == b->has_intersignal_delay &&
           (!a->has_intersignal_delay || a->intersignal_delay == b->intersignal_delay) &&
           properties_eq(a->others, b->others);
}

static bool signal_requests_eq(const struct h248_signal_request *a,
                               const struct h248_signal_request *b)
{
    LIST_EQUAL(struct h248_signal_request, signal_request_eq, a, b);
}

static bool signal_item_eq(const struct h248_signal_item *a, const struct h248_signal_item *b)
{
    return a->is_list == b->is_list && (!a->is_list || a->list_id == b->list_id) &&
           signal_requests_eq(a->signals, b->signals);
}

static bool signal_items_eq(const struct h248_signal_item *a, const struct h248_signal_item *b)
{
    LIST_EQUAL(struct h248_signal_item, signal_item_eq, a, b);
}

static bool signals_eq(const struct h248_signals *a, const struct h248_signals *b)
{
    BOTH_OR_NEITHER(a, b);
    return signal_items_eq(a->items, b->items);
}

static bool observed_event_eq(const struct h248_observed_event *a,
                              const struct h248_observed_event *b)
{
    return a->has_timestamp == b->has_timestamp &&
           (!a->has_timestamp ||
            (memcmp(a->date, b->date, 8) == 0 && memcmp(a->time, b->time, 8) == 0)) &&
           str_eq(&a->name, &b->name) && event_parms_eq(a->parms, b->parms);
}

static bool observed_events_eq(const struct h248_observed_event *a,
                               const struct h248_observed_event *b)
{
    LIST_EQUAL(struct h248_observed_event, observed_event_eq, a, b);
}

static bool digit_map_eq(const struct h248_digit_map *a, const struct h248_digit_map *b)
{
    return a->has_name == b->has_name && (!a->has_name || str_eq(&a->name, &b->name)) &&
           a->has_value == b->has_value && (!a->has_value || str_eq(&a->value, &b->value));
}

static bool package_eq(const struct h248_package *a, const struct h248_package *b)
{
    return str_eq(&a->name, &b->name) && a->version == b->version;
}

static bool packages_eq(const struct h248_package *a, const struct h248_package *b)
{
    LIST_EQUAL(struct h248_package, package_eq, a, b);
}

static bool service_change_eq(const struct h248_service_change *a,
                              const struct h248_service_change *b)
{
    if (a->method != b->method ||
        (a->method == H248_SC_EXTENSION && !str_eq(&a->method_ext, &b->method_ext)))
        return false;
    if (a->has_reason != b->has_reason || (a->has_reason && !value_eq(&a->reason, &b->reason)))
        return false;
    if (a->has_delay != b->has_delay || (a->has_delay && a->delay != b->delay))
        return false;
    if (a->has_address != b->has_address)
        return false;
    if (a->has_address) {
        if (a->address_is_port != b->address_is_port)
            return false;
        if (a->address_is_port ? a->address_port != b->address_port
                               : !mid_eq(&a->address, &b->address))
            return false;
    }
    if (a->has_profile != b->has_profile ||
        (a->has_profile &&
         (!str_eq(&a->profile_name, &b->profile_name) || a->profile_version != b->profile_version)))
        return false;
    if (a->has_version != b->has_version || (a->has_version && a->version != b->version))
        return false;
    if (a->has_mgc_id != b->has_mgc_id || (a->has_mgc_id && !mid_eq(&a->mgc_id, &b->mgc_id)))
        return false;
    if (a->has_timestamp != b->has_timestamp ||
        (a->has_timestamp &&
         (memcmp(a->date, b->date, 8) != 0 || memcmp(a->time, b->time, 8) != 0)))
        return false;
    return a->incomplete == b->incomplete && properties_eq(a->extensions, b->extensions) &&
           audit_items_eq(a->audit, b->audit);
}

static bool descriptor_eq(const struct h248_descriptor *a, const struct h248_descriptor *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case H248_DESC_MEDIA:
        return media_eq(&a->u.media, &b->u.media);
    case H248_DESC_EVENTS:
        return events_eq(&a->u.events, &b->u.events);
    case H248_DESC_EVENT_BUFFER:
        return requested_events_eq(a->u.event_buffer.events, b->u.event_buffer.events);
    case H248_DESC_SIGNALS:
        return signals_eq(&a->u.signals, &b->u.signals);
    case H248_DESC_DIGIT_MAP:
        return digit_map_eq(&a->u.digit_map, &b->u.digit_map);
    case H248_DESC_AUDIT:
        return audit_items_eq(a->u.audit.items, b->u.audit.items);
    case H248_DESC_OBSERVED_EVENTS:
        return a->u.observed.request_id == b->u.observed.request_id &&
               observed_events_eq(a->u.observed.events, b->u.observed.events);
    case H248_DESC_STATISTICS:
        return properties_eq(a->u.statistics.items, b->u.statistics.items);
    case H248_DESC_PACKAGES:
        return packages_eq(a->u.packages, b->u.packages);
    case H248_DESC_ERROR:
        return error_eq(&a->u.error, &b->u.error);
    case H248_DESC_SERVICE_CHANGE:
        return service_change_eq(&a->u.service_change, &b->u.service_change);
    case H248_DESC_MODEM:
    case H248_DESC_MUX:
        return str_eq(&a->u.raw.text, &b->u.raw.text);
    case H248_DESC_TOKEN:
        return a->u.token == b->u.token;
    }
    return false;
}

static bool descriptors_eq(const struct h248_descriptor *a, const struct h248_descriptor *b)
{
    LIST_EQUAL(struct h248_descriptor, descriptor_eq, a, b);
}

static bool termination_id_eq(const struct h248_termination_id *a,
                              const struct h248_termination_id *b)
{
    return str_eq(&a->text, &b->text);
}

static bool termination_ids_eq(const struct h248_termination_id *a,
                               const struct h248_termination_id *b)
{
    LIST_EQUAL(struct h248_termination_id, termination_id_eq, a, b);
}

static bool command_eq(const struct h248_command *a, const struct h248_command *b)
{
    return a->kind == b->kind && a->optional == b->optional &&
           a->wildcard_reply == b->wildcard_reply && a->term_list == b->term_list &&
           termination_ids_eq(a->terminations, b->terminations) &&
           descriptors_eq(a->descriptors, b->descriptors);
}

static bool commands_eq(const struct h248_command *a, const struct h248_command *b)
{
    LIST_EQUAL(struct h248_command, command_eq, a, b);
}

static bool topology_eq(const struct h248_topology_triple *a, const struct h248_topology_triple *b)
{
    return str_eq(&a->from, &b->from) && str_eq(&a->to, &b->to) && a->direction == b->direction &&
           a->has_stream == b->has_stream && (!a->has_stream || a->stream == b->stream);
}

static bool topologies_eq(const struct h248_topology_triple *a,
                          const struct h248_topology_triple *b)
{
    LIST_EQUAL(struct h248_topology_triple, topology_eq, a, b);
}

/* No properties and properties that are all absent encode alike, so they compare alike. */
static bool context_props_eq(const struct h248_context_props *a, const struct h248_context_props *b)
{
    static const struct h248_context_props none;
    if (a == NULL)
        a = &none;
    if (b == NULL)
        b = &none;
    return a->has_priority == b->has_priority && (!a->has_priority || a->priority == b->priority) &&
           a->emergency == b->emergency && a->emergency_off == b->emergency_off &&
           a->has_ieps == b->has_ieps && (!a->has_ieps || a->ieps == b->ieps) &&
           topologies_eq(a->topology, b->topology) && properties_eq(a->attributes, b->attributes) &&
           a->has_audit == b->has_audit && audit_items_eq(a->audit, b->audit);
}

static bool action_eq(const struct h248_action *a, const struct h248_action *b)
{
    return a->context.kind == b->context.kind &&
           (a->context.kind != H248_CTX_ID || a->context.id == b->context.id) &&
           context_props_eq(a->props, b->props) && commands_eq(a->commands, b->commands) &&
           error_eq(a->error, b->error);
}

static bool actions_eq(const struct h248_action *a, const struct h248_action *b)
{
    LIST_EQUAL(struct h248_action, action_eq, a, b);
}

static bool ack_eq(const struct h248_ack_range *a, const struct h248_ack_range *b)
{
    return a->first == b->first && a->last == b->last;
}

static bool acks_eq(const struct h248_ack_range *a, const struct h248_ack_range *b)
{
    LIST_EQUAL(struct h248_ack_range, ack_eq, a, b);
}

static bool segment_eq(const struct h248_transaction *a, const struct h248_transaction *b)
{
    return a->has_segment == b->has_segment &&
           (!a->has_segment || a->segment_number == b->segment_number) &&
           a->segmentation_complete == b->segmentation_complete;
}

static bool transaction_eq(const struct h248_transaction *a, const struct h248_transaction *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case H248_TRANS_REQUEST:
        return a->id == b->id && actions_eq(a->actions, b->actions);
    case H248_TRANS_REPLY:
        return a->id == b->id && segment_eq(a, b) && a->imm_ack_required == b->imm_ack_required &&
               error_eq(a->error, b->error) && actions_eq(a->actions, b->actions);
    case H248_TRANS_PENDING:
        return a->id == b->id;
    case H248_TRANS_RESPONSE_ACK:
        return acks_eq(a->acks, b->acks);
    case H248_TRANS_SEGMENT_REPLY:
        return a->id == b->id && segment_eq(a, b);
    }
    return false;
}

static bool transactions_eq(const struct h248_transaction *a, const struct h248_transaction *b)
{
    LIST_EQUAL(struct h248_transaction, transaction_eq, a, b);
}

bool h248_message_equal(const struct h248_message *a, const struct h248_message *b)
{
    BOTH_OR_NEITHER(a, b);
    if (a->has_auth != b->has_auth)
        return false;
    if (a->has_auth && (a->auth_spi != b->auth_spi || a->auth_seq != b->auth_seq ||
                        !str_eq(&a->auth_data, &b->auth_data)))
        return false;
    return a->version == b->version && mid_eq(&a->mid, &b->mid) && error_eq(a->error, b->error) &&
           transactions_eq(a->transactions, b->transactions);
}
