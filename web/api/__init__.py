"""The JSON API (Mailpit-compatible, plus relay's own routes) and the operators' routes."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from web import ops
from web.api import chaos, checks, hooks, info, message, messages, openapi, queue, send, tags, wait

V1 = "/api/v1"


def routes() -> list[BaseRoute]:
    """Every API route, for web.app to mount."""
    return [
        Route(f"{V1}/info", info.info, methods=["GET"]),
        Route(f"{V1}/messages", messages.list_messages, methods=["GET"]),
        Route(f"{V1}/messages", messages.set_read, methods=["PUT"]),
        Route(f"{V1}/messages", messages.delete_messages, methods=["DELETE"]),
        Route(f"{V1}/search", messages.search_messages, methods=["GET"]),
        Route(f"{V1}/search", messages.delete_search, methods=["DELETE"]),
        Route(f"{V1}/message/{{ID}}", message.get_message, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/headers", message.get_headers, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/raw", message.get_raw, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/part/{{PartID}}", message.get_part, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/release", message.release, methods=["POST"]),
        Route(f"{V1}/message/{{ID}}/html-check", checks.html_check, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/link-check", checks.link_check, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/sa-check", checks.spam_check, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/deliveries", queue.deliveries, methods=["GET"]),
        Route(f"{V1}/message/{{ID}}/deliveries/{{Action}}", queue.act_on_message, methods=["POST"]),
        Route(f"{V1}/queue", queue.list_queue, methods=["GET"]),
        Route(f"{V1}/queue/groups", queue.queue_groups, methods=["GET"]),
        Route(f"{V1}/queue/shape", queue.queue_shape, methods=["GET"]),
        Route(f"{V1}/queue/{{Action}}", queue.act_on_queue, methods=["POST"]),
        Route(f"{V1}/recipient/{{RID}}/{{Action}}", queue.act_on_recipient, methods=["POST"]),
        Route(f"{V1}/tags", tags.list_tags, methods=["GET"]),
        Route(f"{V1}/tags", tags.set_tags, methods=["PUT"]),
        Route(f"{V1}/tags/{{Tag}}", tags.rename_tag, methods=["PUT"]),
        Route(f"{V1}/tags/{{Tag}}", tags.delete_tag, methods=["DELETE"]),
        Route(f"{V1}/send", send.send, methods=["POST"]),
        Route(f"{V1}/wait", wait.wait_for_message, methods=["GET"]),
        Route(f"{V1}/openapi.json", openapi.openapi, methods=["GET"]),
        Route(f"{V1}/chaos", chaos.get_triggers, methods=["GET"]),
        Route(f"{V1}/chaos", chaos.set_triggers, methods=["PUT"]),
        Route(f"{V1}/chaos/rules", chaos.list_rules, methods=["GET"]),
        Route(f"{V1}/chaos/rules", chaos.add_rule, methods=["POST"]),
        Route(f"{V1}/chaos/rules", chaos.delete_rules, methods=["DELETE"]),
        Route(f"{V1}/chaos/rules/{{ID}}", chaos.delete_rule, methods=["DELETE"]),
        Route(f"{V1}/suppressions", hooks.list_suppressions, methods=["GET"]),
        Route(f"{V1}/suppressions", hooks.add_suppression, methods=["POST"]),
        Route(f"{V1}/suppressions/{{Address}}", hooks.delete_suppression, methods=["DELETE"]),
        Route(f"{V1}/webhooks", hooks.list_webhooks, methods=["GET"]),
        Route(f"{V1}/webhooks/events", hooks.list_events, methods=["GET"]),
        Route(f"{V1}/webhooks/events/{{EventID}}", hooks.get_event, methods=["GET"]),
        Route(f"{V1}/webhooks/events/{{EventID}}/resend", hooks.resend_event, methods=["POST"]),
        Route("/view/{ID}.html", message.view_html, methods=["GET"]),
        Route("/view/{ID}.txt", message.view_text, methods=["GET"]),
        Route("/metrics", ops.metrics, methods=["GET"]),
        Route("/readyz", ops.readyz, methods=["GET"]),
    ]
