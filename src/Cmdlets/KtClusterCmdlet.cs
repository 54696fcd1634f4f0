using System.Collections;
using System.Globalization;
using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Which kubeconfig and context a cmdlet talks to the cluster with (each cmdlet declares -Namespace its own way).</summary>
public abstract class KtKubeCmdlet : KtCmdlet
{
    [Parameter]
    [ArgumentCompleter(typeof(ContextCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Context { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Kubeconfig { get; set; }

    /// <summary>-Kubeconfig as a file system path (relative to the current PowerShell location), or null.</summary>
    protected string? KubeconfigPath => Kubeconfig is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(Kubeconfig);
}

/// <summary>The parameters every cmdlet that starts a session in a cluster shares (DESIGN.md §4).</summary>
public abstract class KtClusterCmdlet : KtKubeCmdlet
{
    /// <summary>The namespace; by default the kubeconfig context's namespace.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NamespaceCompleter))]
    [ValidatePattern("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    public string? Namespace { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Image { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ImagePullSecret { get; set; }

    [Parameter]
    public Hashtable? NodeSelector { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ServiceAccount { get; set; }

    [Parameter]
    public Hashtable? Label { get; set; }

    [Parameter]
    public Hashtable? Annotation { get; set; }

    /// <summary>Seconds to wait for the shadow pod to run.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int Timeout { get; set; } = 60;

    /// <summary>
    /// Starts a session through the engine (progress and messages written as they come) and writes it to the pipeline,
    /// detached from this cmdlet's output. A refusal becomes an ErrorRecord with the engine's ErrorId: terminating,
    /// unless <paramref name="terminating"/> is false (a cmdlet that starts one session per pipeline object goes on).
    /// </summary>
    protected void StartSession(Func<IKtOutput, CancellationToken, Task<Session>> start, object? target, bool terminating = true)
    {
        Session session;
        try
        {
            session = Run(start);
        }
        catch (KtException e)
        {
            if (terminating) ThrowKtError(e, target);
            else WriteKtError(e, target);
            return;
        }
        session.DetachOutput();
        WriteObject(new KtSession(session.Snapshot()));
    }

    /// <summary>
    /// The common parameters onto a cmdlet's options; cmdlets add their own with <c>with</c>. Not generic on purpose:
    /// a constraint on an engine type would make PowerShell load the engine while it enumerates the cmdlet types,
    /// before <see cref="ModuleInit"/> can resolve it.
    /// </summary>
    protected ShadowOptions CommonOptions(ShadowOptions seed)
    {
        var options = seed with
        {
            Kubeconfig = KubeconfigPath,
            Context = Context,
            Namespace = Namespace,
            ImagePullSecret = ImagePullSecret,
            NodeSelector = ToMap(NodeSelector),
            ServiceAccount = ServiceAccount ?? "default",
            Labels = ToMap(Label),
            Annotations = ToMap(Annotation),
            PodCreationTimeout = TimeSpan.FromSeconds(Timeout),
        };
        return Image is null ? options : options with { Image = Image };
    }

    private static Dictionary<string, string> ToMap(Hashtable? table)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (table is null) return map;
        foreach (DictionaryEntry e in table)
            map[Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? ""] = Convert.ToString(e.Value, CultureInfo.InvariantCulture) ?? "";
        return map;
    }
}
