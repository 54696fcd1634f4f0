using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Cluster.Exchange;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>How an exchange takes a Service's traffic (mirrors the engine's ExchangeMode).</summary>
public enum KtExchangeMode
{
    Selector,
    Scale,
}

/// <summary>Sends everything that reaches a Service to local ports until the session stops.</summary>
[Cmdlet(VerbsLifecycle.Start, "KtExchange", DefaultParameterSetName = ServiceSet, SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class StartKtExchangeCommand : KtClusterCmdlet
{
    private const string ServiceSet = "Service";
    private const string DeploymentSet = "Deployment";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ServiceSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ServiceCompleter))]
    public string Service { get; set; } = "";

    /// <summary>Instead of -Service: a Deployment, whose Service (the one selecting its pods) is exchanged (kt-connect's deploy/&lt;name&gt;).</summary>
    [Parameter(Mandatory = true, ParameterSetName = DeploymentSet)]
    [ValidateNotNullOrEmpty]
    public string Deployment { get; set; } = "";

    /// <summary>
    /// Local ports, each optionally followed by the Service port or targetPort it takes over: <c>8080</c>, <c>8080:80</c>.
    /// Numbers bind too (<c>-Port 8080, 9090</c>), since PowerShell turns them into strings.
    /// </summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Port { get; set; } = [];

    [Parameter]
    public KtExchangeMode Mode { get; set; } = KtExchangeMode.Selector;

    [Parameter]
    [ValidateRange(0, 86400)]
    public int RecoverWaitTime { get; set; } = 120;

    [Parameter]
    public SwitchParameter SkipPortCheck { get; set; }

    protected override void EndProcessing()
    {
        ExchangeOptions options;
        try
        {
            options = CommonOptions(new ExchangeOptions()) with
            {
                Service = ParameterSetName == DeploymentSet ? "" : Service,
                Deployment = ParameterSetName == DeploymentSet ? Deployment : null,
                Ports = ExposedPort.Validate([.. Port.Select(ExposedPort.Parse)]),
                Mode = Enum.Parse<ExchangeMode>(Mode.ToString()),
                RecoverWaitTime = TimeSpan.FromSeconds(RecoverWaitTime),
                SkipPortChecking = SkipPortCheck,
            };
            options.Validate();
        }
        catch (KtException e)
        {
            ThrowKtError(e, Target);
            return;
        }

        var target = (ParameterSetName == DeploymentSet ? $"The Service of Deployment '{Deployment}'" : $"Service '{Service}'") +
            $" in namespace '{Namespace ?? "(context default)"}'";
        var what = Mode == KtExchangeMode.Selector
            ? "Point its selector at a shadow pod forwarding to local ports " + string.Join(", ", Port)
            : "Scale its Deployment to 0 and start a shadow pod forwarding to local ports " + string.Join(", ", Port);
        if (!ShouldProcess(target, what)) return;
        StartSession((output, ct) => Exchanger.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct), Target);
        base.EndProcessing();
    }

    private string Target => ParameterSetName == DeploymentSet ? "deploy/" + Deployment : Service;
}
