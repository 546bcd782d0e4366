"""Real-to-Binary's attention transfer: the binary student matches its float teacher's attention maps.

Martinez et al. 2020 ("Training Binary Neural Networks with Real-to-Binary Convolutions",
eq. 3, after Zagoruyko & Komodakis 2017) add to the distillation loss

    L_att = Σ_j ‖ Q_s^j / ‖Q_s^j‖₂ − Q_t^j / ‖Q_t^j‖₂ ‖₂,   Q^j = Σ_c |A_c^j|²

where A^j is the output of the j-th binary convolution (shape C × spatial) of the
student and of the same layer of the teacher, and Q^j its attention map over the
spatial positions. Here the points j are the student's quantized layers (QuantLayers
with a 1-bit input or weight quantizer: the binary convolutions, and in the first step of
a two-step recipe the same layers with real weights); the teacher needs modules of the same names, as the
float twin built from the same model arguments has. For a dense layer (no spatial axes)
the map is |A|² per unit. The term is averaged over the batch and summed over j.
"""

from __future__ import annotations

from torch import Tensor, nn

from onebit.errors import ConfigError
from onebit.nn.layers import QuantLayer

__all__ = ["AttentionTransfer", "attention_map"]


def attention_map(a: Tensor) -> Tensor:
    """``Q = Σ_c |A_c|²`` over axis 1 for (N, C, ...) outputs, ``|A|²`` for (N, F), flattened and L2-normalized."""
    q = a.square().sum(1) if a.dim() > 2 else a.square()
    q = q.flatten(1)
    return q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)


class AttentionTransfer:
    """Forward hooks on the student's binary layers and the teacher's same-named modules.

    The student's hooks record only in training mode (validation passes are left out);
    :meth:`loss` consumes what the last training step recorded. :meth:`remove` takes the
    hooks off both models.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        self.points = [n for n, m in student.named_modules()
                       if isinstance(m, QuantLayer) and 1 in (m.input_bits, m.weight_bits)]
        if not self.points:
            raise ConfigError("attention transfer needs a student with binary layers (1-bit inputs or weights)")
        teacher_modules = dict(teacher.named_modules())
        missing = [n for n in self.points if n not in teacher_modules]
        if missing:
            raise ConfigError(
                f"attention transfer matches layers by name; the teacher has no {', '.join(missing[:3])}"
                f"{' ...' if len(missing) > 3 else ''}: use the float twin of the student as its teacher"
            )
        self._student: dict[str, Tensor] = {}
        self._teacher: dict[str, Tensor] = {}
        student_modules = dict(student.named_modules())
        self._handles = []
        for name in self.points:
            self._handles.append(
                student_modules[name].register_forward_hook(self._recorder(self._student, name, training_only=True)))
            self._handles.append(
                teacher_modules[name].register_forward_hook(self._recorder(self._teacher, name, training_only=False)))

    @staticmethod
    def _recorder(store: dict[str, Tensor], name: str, training_only: bool):  # noqa: ANN205 - a torch hook
        def hook(module: nn.Module, _inputs: object, output: Tensor) -> None:
            if module.training or not training_only:
                store[name] = output

        return hook

    def loss(self) -> Tensor:
        """``Σ_j mean_b ‖Q_s − Q_t‖₂`` for the last training step; clears the recorded outputs."""
        if set(self._student) != set(self.points) or set(self._teacher) != set(self.points):
            raise ConfigError("attention transfer: run the student (training mode) and the teacher on a batch first")
        total = sum(
            (attention_map(self._student[n]) - attention_map(self._teacher[n].detach())).norm(dim=1).mean()
            for n in self.points
        )
        self._student.clear()
        self._teacher.clear()
        return total

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
