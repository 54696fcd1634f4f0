using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
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
public sealed class StartKtExchangeCommand : KtServiceTakeoverCmdlet
{
    [Parameter]
    public KtExchangeMode Mode { get; set; } = KtExchangeMode.Selector;

    [Parameter]
    [ValidateRange(0, 86400)]
    public int RecoverWaitTime { get; set; } = 120;

    /// <summary>Go ahead when some of the Service's ports cannot be relayed to the original pods (they are refused while exchanged).</summary>
    [Parameter]
    public SwitchParameter AllowPartial { get; set; }

    protected override void EndProcessing()
    {
        ExchangeOptions options;
        try
        {
            options = ((ExchangeOptions)CommonOptions(new ExchangeOptions())) with
            {
                Service = ServiceName,
                Deployment = DeploymentName,
                Ports = ParsedPorts,
                Mode = Enum.Parse<ExchangeMode>(Mode.ToString()),
                RecoverWaitTime = TimeSpan.FromSeconds(RecoverWaitTime),
                SkipPortChecking = SkipPortCheck,
                AllowPartial = AllowPartial,
            };
            options.Validate();
        }
        catch (KtException e)
        {
            ThrowKtError(e, Target);
            return;
        }

        var what = Mode == KtExchangeMode.Selector
            ? "Point its selector at a shadow pod forwarding to local ports " + string.Join(", ", Port)
            : "Scale its Deployment to 0 and start a shadow pod forwarding to local ports " + string.Join(", ", Port);
        if (!ShouldProcess(ShouldProcessTarget, what)) return;
        StartSession((output, ct) => Exchanger.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct), Target);
        base.EndProcessing();
    }
}
