using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>How a mesh session gets marked requests (mirrors the engine's MeshMode).</summary>
public enum KtMeshMode
{
    Auto,
    Manual,
}

/// <summary>Sends a Service's marked requests to local ports until the session stops.</summary>
[Cmdlet(VerbsLifecycle.Start, "KtMesh", DefaultParameterSetName = ServiceSet, SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class StartKtMeshCommand : KtServiceTakeoverCmdlet
{
    [Parameter]
    public KtMeshMode Mode { get; set; } = KtMeshMode.Auto;

    /// <summary><c>val</c>, <c>key:</c> or <c>key:val</c>; the key defaults to <c>version</c>, the value to 5 random letters.</summary>
    [Parameter]
    public string? VersionMark { get; set; }

    /// <summary>Auto mode: the router pod's image.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? RouterImage { get; set; }

    protected override void EndProcessing()
    {
        MeshOptions options;
        try
        {
            options = ((MeshOptions)CommonOptions(new MeshOptions())) with
            {
                Service = ServiceName,
                Deployment = DeploymentName,
                Ports = ParsedPorts,
                Mode = Enum.Parse<MeshMode>(Mode.ToString()),
                Mark = Engine.Sessions.Exchange.VersionMark.Parse(VersionMark),
                SkipPortChecking = SkipPortCheck,
                RouterImage = RouterImage ?? MeshOptions.DefaultRouterImage,
            };
            options.Validate();
        }
        catch (KtException e)
        {
            ThrowKtError(e, Target);
            return;
        }

        var service = ParameterSetName == DeploymentSet ? "<service>" : Service;
        var shadow = options.ShadowNameFor(service);
        var what = Mode == KtMeshMode.Auto
            ? $"Point its selector at router {MeshOptions.RouterNameFor(service)} sending requests with header '{options.Mark.Key}: {options.Mark.Version}' " +
              $"to shadow {shadow} forwarding to local ports " + string.Join(", ", Port)
            : $"Add shadow pod {shadow} labelled {options.Mark.Key}={options.Mark.Version}, forwarding to local ports " + string.Join(", ", Port);
        if (!ShouldProcess(ShouldProcessTarget, what)) return;
        StartSession((output, ct) => Mesher.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct), Target);
        base.EndProcessing();
    }
}
