using System.Management.Automation;
using KtConnect.Engine.Sessions.Exchange;

namespace KtConnect.Cmdlets;

/// <summary>
/// What Start-KtExchange and Start-KtMesh share: the Service (or, in its own parameter set, the Deployment whose Service
/// is meant: kt-connect's deploy/&lt;name&gt;), the local ports, and the port check.
/// </summary>
public abstract class KtServiceTakeoverCmdlet : KtClusterCmdlet
{
    protected const string ServiceSet = "Service";
    protected const string DeploymentSet = "Deployment";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ServiceSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ServiceCompleter))]
    public string Service { get; set; } = "";

    /// <summary>Instead of -Service: a Deployment, whose Service (the one selecting its pods) is taken (kt-connect's deploy/&lt;name&gt;).</summary>
    [Parameter(Mandatory = true, ParameterSetName = DeploymentSet)]
    [ValidateNotNullOrEmpty]
    public string Deployment { get; set; } = "";

    /// <summary>
    /// Local ports, each optionally followed by the Service port or targetPort it serves: <c>8080</c>, <c>8080:80</c>.
    /// Numbers bind too (<c>-Port 8080, 9090</c>), since PowerShell turns them into strings.
    /// </summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Port { get; set; } = [];

    [Parameter]
    public SwitchParameter SkipPortCheck { get; set; }

    /// <summary>The Service name for the options ("" when a Deployment was given).</summary>
    protected string ServiceName => ParameterSetName == DeploymentSet ? "" : Service;

    /// <summary>The Deployment name for the options (null when a Service was given).</summary>
    protected string? DeploymentName => ParameterSetName == DeploymentSet ? Deployment : null;

    protected IReadOnlyList<ExposedPort> ParsedPorts => ExposedPort.Validate([.. Port.Select(ExposedPort.Parse)]);

    /// <summary>The ErrorRecord target: the Service, or deploy/&lt;name&gt;.</summary>
    protected string Target => ServiceTargets.Display(ServiceName, DeploymentName);

    /// <summary>The ShouldProcess target, e.g. <c>Service 'orders' in namespace 'dev'</c>.</summary>
    protected string ShouldProcessTarget =>
        (ParameterSetName == DeploymentSet ? $"The Service of Deployment '{Deployment}'" : $"Service '{Service}'") +
        $" in namespace '{Namespace ?? "(context default)"}'";
}
