"""paramd.torch - a torch.nn.Module whose parameters live in a paramd table.

    import paramd, paramd.torch
    ps = paramd.torch.bind(client, model, "model", rule="sgd", lr=0.1, consistency="sync")
    for x, y in batches:
        ps.pull()                                   # this step's weights, into the model
        ps.zero_grad()
        F.cross_entropy(model(x), y).backward()     # gradients land in the push buffer
        ps.push()                                   # the servers apply the update
        client.clock()

The design: one buffer each for the values and the gradients.  bind()
takes two shared buffers from Client.alloc(), each the size of all of
the module's parameters, and makes every parameter's .data a view into
the first and its .grad a view into the second, in the order of
module.parameters().  So the whole model is one dense table and one
contiguous range: a pull is one request that the servers copy straight
into the parameters (over shared memory, by reference: no float passes
through the connection or through Python), backward accumulates into the
gradient views in place, and a push is one request that the servers'
update rule reads where backward wrote it.  Nothing in a step copies the
model in Python.

Invariants, and how they are kept:
  - Every parameter's .data and .grad stay views into the two buffers.
    torch keeps them: backward accumulates into an existing .grad in
    place, and zero_grad() without set_to_none zeroes it in place.  Code
    that replaces them (zero_grad(set_to_none=True), the default of torch
    2, or an assignment to p.data) is noticed by pull() and push(), which
    copy the replaced tensor into the buffer (a gradient) and bind the
    views again, so the result is right either way, at the cost of that
    copy.
  - The worker that creates the table writes the module's initial values
    (paramd_table_open's init); bind() then pulls, so every worker starts
    from the same weights whatever its own initialisation.
  - The buffers are freed by Client.close(); before that, close moves
    every parameter and gradient into ordinary torch memory (one copy, at
    the end), so the module stays usable after the client is gone.

What it does not do: buffers (BatchNorm's running statistics) are not
parameters and stay local to each worker; parameters must be float32 on
the CPU; parameters with requires_grad=False are left out.
"""

import torch

from . import errors

__all__ = ["bind", "ModuleTable"]


class ModuleTable:
    """A module's parameters bound to a dense table; see bind()."""

    def __init__(self, client, module, name, spec, spec_keys):
        params, seen = [], set()
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:  # tied weights count once
                seen.add(id(p))
                params.append(p)
        if not params:
            raise errors.bad_argument("paramd.torch.bind: the module has no trainable parameters")
        for p in params:
            if p.dtype != torch.float32 or p.device.type != "cpu":
                raise errors.bad_argument(
                    "paramd.torch.bind: a parameter of shape %s is %s on %s; paramd tables "
                    "hold float32 on the CPU: call module.float().cpu() first"
                    % (tuple(p.shape), p.dtype, p.device))
        self.client = client
        self.module = module
        self.params = params
        self.size = sum(p.numel() for p in params)
        self.values = client.alloc(self.size)     # numpy views of the shared buffers
        self.grads = client.alloc(self.size)
        self._v = torch.from_numpy(self.values)
        self._g = torch.from_numpy(self.grads)
        self._slices = []
        off = 0
        with torch.no_grad():
            for p in params:
                n = p.numel()
                self._slices.append((off, n))
                self._v[off:off + n].view_as(p).copy_(p)
                off += n
        self._bind()
        self.table = client.table(name, self.size, init=self.values, spec=spec, **spec_keys)
        client._on_close.append(self._release)
        self.pull()

    def __repr__(self):
        return "<paramd.torch.ModuleTable %r: %d parameters in %d tensors>" % (
            self.table.name, self.size, len(self.params))

    # -- the views ------------------------------------------------------------

    def _view(self, flat, i):
        off, n = self._slices[i]
        return flat[off:off + n].view_as(self.params[i])

    def _bind(self):
        for i, p in enumerate(self.params):
            p.data = self._view(self._v, i)
            p.grad = self._view(self._g, i)

    def _check_values(self):
        for i, p in enumerate(self.params):
            if p.data.data_ptr() != self._v.data_ptr() + 4 * self._slices[i][0]:
                p.data = self._view(self._v, i)  # the pull overwrites it anyway

    def _check_grads(self):
        for i, p in enumerate(self.params):
            g = p.grad
            off, n = self._slices[i]
            if g is not None and g.data_ptr() == self._g.data_ptr() + 4 * off:
                continue
            view = self._view(self._g, i)
            with torch.no_grad():
                if g is None:
                    view.zero_()
                else:
                    view.copy_(g)
            p.grad = view

    # -- a step ---------------------------------------------------------------

    def pull(self):
        """Pull the table into the module's parameters."""
        self._check_values()
        self.table.pull(out=self.values)

    def pull_async(self):
        """Start pull(); the Request's wait() completes it.  Do not run the
        module before then."""
        self._check_values()
        return self.table.pull_async(out=self.values)

    def zero_grad(self):
        """Zero the gradient buffer (backward accumulates into it)."""
        self.grads.fill(0)
        self._check_grads()

    def push(self):
        """Push the gradients of every parameter, tagged with the client's
        clock."""
        self._check_grads()
        self.table.push(self.grads)

    def push_async(self):
        """Start push(); do not run backward again before the Request's
        wait()."""
        self._check_grads()
        return self.table.push_async(self.grads)

    def _release(self):
        """Client.close(): move parameters and gradients out of the shared
        buffers, which close frees."""
        with torch.no_grad():
            for p in self.params:
                p.data = p.data.clone()
                if p.grad is not None:
                    p.grad = p.grad.clone()
        self.values = self.grads = self._v = self._g = None


def bind(client, module, name="model", spec=None, **spec_keys):
    """Bind `module`'s parameters to the dense table `name` (created with
    the module's current values if it does not exist; spec keys as for
    Client.table(): rule="sgd", lr=0.05, consistency="sync", ...).  Returns
    a ModuleTable with pull(), zero_grad(), push() and their async forms."""
    if not isinstance(module, torch.nn.Module):
        raise errors.bad_argument("paramd.torch.bind: expected a torch.nn.Module, not %s"
                                  % type(module).__name__)
    return ModuleTable(client, module, name, spec, spec_keys)


def flat_size(module):
    """The number of floats bind() would put in the table."""
    seen = set()
    return sum(p.numel() for p in module.parameters()
               if p.requires_grad and id(p) not in seen and not seen.add(id(p)))

