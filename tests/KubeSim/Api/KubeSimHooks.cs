using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;

namespace KtConnect.KubeSim.Api;

/// <summary>Test hooks of a running server. All members are safe to set while requests are in flight.</summary>
public sealed class KubeSimHooks
{
    /// <summary>
    /// Decides what an authenticated user may do. Default (null): the admin token may do everything, other tokens
    /// nothing. Returning false gives the real 403 Forbidden Status naming the verb and resource.
    /// </summary>
    public Func<RequestInfo, bool>? Authorize { get; set; }

    /// <summary>
    /// Runs first for every request (after nothing else). Return true when the hook wrote the response itself, for
    /// example a 429 with Retry-After or a 500, to test client retries; false to let the server answer. Setting
    /// <c>RequestAborted</c> to <c>CancellationToken.None</c> makes the server finish the request even if its client
    /// leaves, as a real API server does once a write has reached etcd.
    /// </summary>
    public Func<HttpContext, Task<bool>>? BeforeRequest { get; set; }

    /// <summary>
    /// The bearer tokens the server accepts right now: token → (user, groups). Starts with the options' tokens;
    /// add or remove entries at run time to rotate credentials (an exec plugin's refresh after a 401).
    /// Use <see cref="KubeSimServer.AddToken"/> for the common cases.
    /// </summary>
    public ConcurrentDictionary<string, (string User, IReadOnlyList<string> Groups)> Tokens { get; } = new(StringComparer.Ordinal);

    /// <summary>Every request received, in order.</summary>
    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>What GET pods/{name}/log answers, per (namespace, pod). Missing: an empty log.</summary>
    public ConcurrentDictionary<(string Namespace, string Pod), string> PodLogs { get; } = new();
}
