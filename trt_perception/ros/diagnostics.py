"""``diagnostic_msgs/DiagnosticArray`` from health statuses, with diagnostic_updater's conventions.

diagnostic_updater (not on PyPI) is not used; its conventions are followed so that
diagnostic_aggregator, rqt_runtime_monitor and ``ros2 topic echo /diagnostics`` read the nodes
like any other:

* the array goes to the absolute topic ``/diagnostics``, stamped with the node's clock;
* one DiagnosticStatus per task, named ``"<node>: <task>"`` where ``<node>`` is the node's fully
  qualified name (namespace included, as ROS 1's updater and the aggregators' path matching expect),
  e.g. ``"/cam_front/detector_node: detector latency"``: the nodes of several cameras stay apart;
* ``hardware_id`` set on every status; ``level`` OK (0), WARN (1) or ERROR (2); ``message`` a
  one-line summary (the problems, worst first); ``values`` every statistic as strings.
"""

from __future__ import annotations

from typing import Any, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from trt_perception.core.telemetry.health import Status

TOPIC = "/diagnostics"


def diagnostic_array(node_name: str, hardware_id: str, statuses: Sequence[Status], stamp: Any) -> DiagnosticArray:
    """The DiagnosticArray of ``statuses`` (``node_name``: fully qualified; ``stamp``:
    builtin_interfaces/Time).
    """
    out = DiagnosticArray()
    out.header.stamp = stamp
    for status in statuses:
        out.status.append(DiagnosticStatus(
            level=bytes([status.level]), name=f"{node_name}: {status.task}", message=status.message,
            hardware_id=hardware_id, values=[KeyValue(key=k, value=v) for k, v in status.values]))
    return out
